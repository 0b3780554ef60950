"""`POST /webhooks/vmh/beteiligte/{create|update|delete}`: EspoCRM webhooks in (the seed's paths) as plain
ASGI ahead of FastAPI's router; the body capped before it is parsed; the ids enqueued durably in Redis;
then a coalesced `beteiligte_sync` trigger.

Delivery rules (docs/external-apis.md): EspoCRM retries 401/403/404/405/408/500/503 and connection
errors, gives up at once on 400/422/502/504 and deletes the webhook on 410. So: 401 for a bad
signature (a fixed secret makes the retry succeed), 400 only for bodies that can never succeed,
503 when Redis could not store the ids, never 410.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import redis
from starlette.types import ASGIApp, Receive, Scope, Send

from include.queue.party_queue import RejectedItem
from include.settings import Settings
from webhook_gateway import signature
from webhook_gateway.deps import resources_of
from webhook_gateway.log_safe import escape
from webhook_gateway.metrics import ERRORS, EventMetrics
from webhook_gateway.webhook_resources import WebhookResources

log = logging.getLogger("webhook_gateway.webhooks")

EVENTS = ("create", "update", "delete")
PATH_PREFIX = "/webhooks/vmh/beteiligte/"
MAX_ID_LENGTH = 64
# Items per delivery: EspoCRM sends batches of about 50; each id costs the enqueue script ~10 us of
# Redis time, so 500 keep one delivery's Lua call in the low milliseconds (74,000 ids took 1.25 s).
MAX_ITEMS = 500
_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
BAD_SIGNATURE = "signature does not verify"  # one answer for every bad signature; the log says which
_JSON_HEADERS = [(b"content-type", b"application/json")]
_WANTED_HEADERS = frozenset({b"signature", b"x-signature", b"content-length"})

_METRICS = {event: EventMetrics(event) for event in EVENTS}


def warn_if_unsigned_allowed(settings: Settings) -> None:
    """Warn loudly at start-up when unsigned webhooks are allowed."""
    if settings.espocrm.webhook_allow_unsigned:
        log.warning(
            "!!! ESPOCRM_WEBHOOK_ALLOW_UNSIGNED=true: unsigned webhooks are ACCEPTED. "
            "Development only: anyone who can reach the gateway can queue work. !!!"
        )


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": code, "message": message, **extra}


def _refuse(event: str, status: int, code: str, message: str, **extra: Any) -> _Refused:
    ERRORS.labels(event, str(status)).inc()
    return _Refused(status, code, message, **extra)


class _ClientGone(Exception):
    """The client disconnected (or the server's body deadline ended the request) before the body was in."""


async def _read_limited(receive: Callable[[], Awaitable[MutableMapping[str, Any]]], limit: int) -> tuple[bytes, bool]:
    """The body from the ASGI messages; stops as soon as it passes `limit` (second value True = too large).
    A disconnect raises _ClientGone: a cut body is never taken for the whole one."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientGone
    body = message.get("body", b"")
    if not message.get("more_body"):  # the usual case: the whole body in one message
        return (body[: limit + 1], True) if len(body) > limit else (body, False)
    buf = bytearray(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        buf += message.get("body", b"")
        if len(buf) > limit:
            return bytes(buf[: limit + 1]), True
    return bytes(buf), False


def _id_problem(item: dict[str, Any]) -> str | None:
    if "id" not in item:
        return "missing id"
    value = item["id"]
    if not isinstance(value, str):
        return f"id must be a string, got {type(value).__name__}"
    if not value:
        return "id is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"id longer than {MAX_ID_LENGTH} characters"
    if not _ID_RE.match(value):
        return "id has characters outside [A-Za-z0-9_-]"
    return None


async def _ingest(
    res: WebhookResources, event: str, headers: dict[str, str], body: bytes, too_large: bool
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Verify, parse, store: (status, JSON answer, extra headers). Raises _Refused for 4xx."""
    metrics = _METRICS[event]
    espo = res.settings.espocrm
    if too_large:
        # The body was cut, so its signature cannot be checked: nothing of it is logged (an unsigned
        # client could otherwise write ids of its choosing into WARNING lines).
        log.warning(
            "webhook %s refused: body over %d bytes (content-length %s, read %d)",
            event,
            espo.webhook_max_body_bytes,
            escape(headers.get("content-length", "?"), 20),
            len(body),
        )
        raise _refuse(
            event,
            413,
            "body_too_large",
            f"body larger than {espo.webhook_max_body_bytes} bytes",
            limit=espo.webhook_max_body_bytes,
        )

    if headers.get("signature") or headers.get("x-signature") or not espo.webhook_allow_unsigned:
        verdict = signature.verify(body, headers, res.secrets)
        if not verdict.ok:
            # the log names the cause (unknown webhook id, wrong MAC, ...); the answer does not, so a
            # caller cannot find out which webhook ids are configured
            log.warning("webhook %s refused: %s", event, escape(verdict.reason))
            raise _refuse(
                event,
                401,
                "missing_signature" if verdict.missing else "bad_signature",
                verdict.reason if verdict.missing else BAD_SIGNATURE,
            )

    try:
        items = msgspec.json.decode(body)  # a quarter of json.loads' time; its errors are ValueErrors
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse(event, 400, "bad_body", f"body is not valid JSON: {str(exc)[:200]}") from None
    except RecursionError:  # ~1,000 nested arrays; a body of 100,000 '[' fits in the size limit
        raise _refuse(event, 400, "bad_body", "body is not valid JSON: arrays/objects nested too deeply") from None
    if not isinstance(items, list):
        raise _refuse(event, 400, "bad_body", f"body must be a JSON array of objects, got {type(items).__name__}")
    if len(items) > MAX_ITEMS:
        raise _refuse(
            event,
            413,
            "too_many_items",
            f"more than {MAX_ITEMS} items in one delivery ({len(items)}); EspoCRM sends batches of about 50",
            limit_items=MAX_ITEMS,
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _refuse(
                event, 400, "bad_body", f"body must be a JSON array of objects; item {index} is {type(item).__name__}"
            )

    ids: list[str] = []
    rejected: list[RejectedItem] = []
    for index, item in enumerate(items):
        problem = _id_problem(item)
        if problem:
            rejected.append(RejectedItem(index, problem, item))
        else:
            ids.append(item["id"])

    try:
        result = await res.queue.enqueue(ids, event, body=body, rejected=rejected)  # type: ignore[arg-type]
    except redis.RedisError as exc:
        log.error(
            "webhook %s: Redis could not store %d ids (%s); answering 503 so EspoCRM retries",
            event,
            len(ids),
            type(exc).__name__,
        )
        ERRORS.labels(event, "503").inc()
        return (
            503,
            {"error": "queue_unavailable", "message": "queue unavailable, retry later", "status": 503},
            {"Retry-After": "60"},
        )

    duplicates = len(ids) if result.duplicate else 0
    metrics.accepted.inc(len(ids))
    if duplicates:
        metrics.duplicates.inc(duplicates)
    if rejected:
        metrics.rejected.inc(len(rejected))
    if log.isEnabledFor(logging.INFO):
        log.info(
            "webhook %s: accepted %s%s%s",
            event,
            ",".join(dict.fromkeys(ids)) or "-",
            " (re-delivery)" if result.duplicate else "",
            f"; rejected items {[r.index for r in rejected]}" if rejected else "",
        )

    # off the request path: a task of its own, in a worker thread (sync clients)
    res.trigger.request()
    if rejected:
        res.in_background(res.drain_quietly)
    return (
        200,
        {
            "accepted": len(ids),
            "duplicates": duplicates,
            "rejected": [{"index": r.index, "reason": r.reason} for r in rejected],
        },
        {},
    )


class WebhookIngestMiddleware:
    """`POST /webhooks/vmh/beteiligte/{create|update|delete}` as plain ASGI, ahead of FastAPI's router.

    The hottest path of the gateway (EspoCRM sends every change): routing, the request object and the
    exception middleware cost more than the work itself. Sits inside RequestIdMiddleware (request id,
    access log) and Starlette's ServerErrorMiddleware (an unexpected error is still a 500); answers in
    the gateway's error format ({"error", "message", "status", "request_id"}). Everything else passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        root_path = scope.get("root_path")
        if root_path and path.startswith(root_path + "/"):  # behind a proxy with --root-path, as the router
            path = path[len(root_path) :]
        if not path.startswith(PATH_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        event = path[len(PATH_PREFIX) :]
        extra_headers: dict[str, str] = {}
        answer: dict[str, Any]
        if event not in _METRICS:  # the answer names the known events, never echoes the path
            status, answer = 404, {"error": "unknown_event", "message": f"unknown event; one of {', '.join(EVENTS)}"}
        elif scope["method"] != "POST":
            status, extra_headers = 405, {"Allow": "POST"}
            answer = {"error": "method_not_allowed", "message": "method not allowed; use POST"}
        else:
            headers = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in scope["headers"]
                if name in _WANTED_HEADERS
            }
            res = resources_of(scope["app"]).webhooks
            try:
                if (
                    not (headers.get("signature") or headers.get("x-signature"))
                    and not res.settings.espocrm.webhook_allow_unsigned
                ):
                    log.warning("webhook %s refused: missing Signature / X-Signature header", event)
                    raise _refuse(
                        event,
                        401,
                        "missing_signature",  # the body is never read
                        "missing Signature / X-Signature header",
                    )
                body, too_large = await _read_limited(receive, res.settings.espocrm.webhook_max_body_bytes)
                status, answer, extra_headers = await _ingest(res, event, headers, body, too_large)
            except _Refused as refused:
                status, answer = refused.status, refused.body
            except _ClientGone:  # nobody to answer; nothing was stored
                ERRORS.labels(event, "gone").inc()
                return
            if status == 200:
                _METRICS[event].latency.observe(time.perf_counter() - started)
        if status != 200:
            answer.setdefault("status", status)
            answer.setdefault("request_id", scope.get("state", {}).get("request_id"))
        payload = msgspec.json.encode(answer)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *_JSON_HEADERS,
                    (b"content-length", str(len(payload)).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in extra_headers.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
