"""EspoCRM webhooks in (the seed's paths), durable enqueue in Redis, a coalesced DAG trigger; dead letters.

Delivery rules (docs/external-apis.md): EspoCRM retries 401/403/404/405/408/500/503 and connection
errors, gives up at once on 400/422/502/504 and deletes the webhook on 410. So: 401 for a bad
signature (a fixed secret makes the retry succeed), 400 only for bodies that can never succeed,
503 when Redis could not store the ids, never 410.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
import psycopg
import redis
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Path, Query, Request
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

from include.airflow_api import AirflowApi, trigger_calendar_retry
from include.dag_ids import BETEILIGTE_SYNC_DAG
from include.dead_letter_replay import replay
from include.hub import dead_letters
from include.hub.db import Hub, connect
from include.queue.party_queue import AsyncPartyQueue, PartyQueue, RejectedItem
from include.settings import Settings
from webhook_gateway import signature
from webhook_gateway.auth import require_write
from webhook_gateway.errors import refusal
from webhook_gateway.log_safe import escape
from webhook_gateway.openapi import errors

log = logging.getLogger("webhook_gateway.webhooks")

EVENTS = ("create", "update", "delete")
MAX_ID_LENGTH = 64
# Items per delivery: EspoCRM sends batches of about 50; each id costs the enqueue script ~10 us of
# Redis time, so 500 keep one delivery's Lua call in the low milliseconds (74,000 ids took 1.25 s).
MAX_ITEMS = 500
_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
BAD_SIGNATURE = "signature does not verify"  # one answer for every bad signature; the log says which
MAX_DB_INT = 2**63 - 1  # PostgreSQL bigint: ids and offsets beyond it are a 422, not a failed query
# the hub or Redis being away (a 503); anything else is a bug and stays a 500
_STORE_DOWN = (redis.RedisError, psycopg.OperationalError, OSError)

ACCEPTED = Counter("vmh_webhook_accepted_total", "Webhook items stored in the queue", ["event"])
DUPLICATES = Counter(
    "vmh_webhook_duplicates_total", "Items of exact re-deliveries (counted, still enqueued)", ["event"]
)
REJECTED = Counter("vmh_webhook_rejected_total", "Webhook items without a valid id (dead-lettered)", ["event"])
ERRORS = Counter("vmh_webhook_errors_total", "Webhook requests refused", ["event", "status"])
LATENCY = Histogram(
    "vmh_webhook_request_seconds",
    "Webhook handling time until the answer",
    ["event"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
TRIGGERS = Counter("vmh_webhook_dag_triggers_total", "Coalesced beteiligte_sync trigger attempts", ["outcome"])


class _EventMetrics:
    """The label children of one event, bound once (labels() takes a lock and a dict lookup per call)."""

    def __init__(self, event: str) -> None:
        self.accepted = ACCEPTED.labels(event)
        self.duplicates = DUPLICATES.labels(event)
        self.rejected = REJECTED.labels(event)
        self.latency = LATENCY.labels(event)


_METRICS = {event: _EventMetrics(event) for event in EVENTS}

router = APIRouter()


# -- resources (created on first use, closed with the app) ----------------------------------------
class _TriggerCoalescer:
    """At most one trigger check in flight per process (no thread hop per webhook). A request while
    one runs makes it run once more afterwards (at most every `min_interval_s`), so every enqueue is
    followed by a check that started after it. Called on the event loop only."""

    def __init__(self, fn: Callable[[], None] | None, min_interval_s: float = 0.5) -> None:
        self._fn = fn
        self._min_interval_s = min_interval_s
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        if self._fn is None:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            started = time.monotonic()
            await asyncio.to_thread(self._fn)  # type: ignore[arg-type]  # sync clients; never raises (see trigger_once)
            if not self._again:
                return
            await asyncio.sleep(max(0.0, self._min_interval_s - (time.monotonic() - started)))

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class WebhookResources:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue = AsyncPartyQueue.from_url(settings.redis_url)
        self.sync_redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        self.sync_queue = PartyQueue(
            self.sync_redis, max_attempts=settings.sync.party_max_attempts, lease_s=settings.sync.party_lease_s
        )
        self.airflow = (
            AirflowApi.from_settings(settings, redis_client=self.sync_redis) if settings.airflow_api.url else None
        )
        self.trigger = _TriggerCoalescer(self.trigger_once if self.airflow is not None else None)
        self.secrets = settings.espocrm.webhook_secrets()  # parsed once, not per webhook
        self._last_airflow_warning = 0.0
        self._background: set[asyncio.Future[Any]] = set()

    def in_background(self, fn: Callable[[], None]) -> None:
        """Run a blocking job in a worker thread after the answer (kept referenced until done)."""
        future = asyncio.get_running_loop().run_in_executor(None, fn)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def trigger_once(self) -> None:
        if self.airflow is None:
            return
        try:
            outcome = self.airflow.trigger_coalesced(BETEILIGTE_SYNC_DAG)
            TRIGGERS.labels(outcome).inc()
        except Exception as exc:  # Airflow down: the ids wait for the scheduled sweep
            TRIGGERS.labels("failed").inc()
            now = time.monotonic()
            if now - self._last_airflow_warning > 60:  # once a minute, not once per webhook
                self._last_airflow_warning = now
                log.warning(
                    "could not trigger %s (events wait for the sweep): %s", BETEILIGTE_SYNC_DAG, type(exc).__name__
                )

    def drain_rejected(self) -> int:
        """Move parked dead letters from the Redis outbox into the hub table."""
        dsn = self.settings.postgres.dsn()

        def sink(entry: dict[str, Any]) -> None:
            with connect(dsn) as conn:
                dead_letters.add_from_outbox(conn, entry)

        return self.sync_queue.drain_dead_letter_outbox(sink)

    async def close(self) -> None:
        await self.trigger.wait()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.queue.close()
        self.sync_redis.close()
        if self.airflow is not None:
            self.airflow.close()


def resources(request: Request) -> WebhookResources:
    return _resources_of(request.app)


def _resources_of(app: FastAPI) -> WebhookResources:
    res = app.state.resources.get("webhooks")
    if res is None:
        res = app.state.resources["webhooks"] = WebhookResources(app.state.settings)
        app.state.closers.append(res.close)
    return res


def install(app: FastAPI) -> None:
    """Hook the routes into the gateway; warn loudly when unsigned webhooks are allowed. The webhook
    itself is WebhookIngestMiddleware (create_app adds it inside the request-id middleware)."""
    app.include_router(router)
    if app.state.settings.espocrm.webhook_allow_unsigned:
        log.warning(
            "!!! ESPOCRM_WEBHOOK_ALLOW_UNSIGNED=true: unsigned webhooks are ACCEPTED. "
            "Development only: anyone who can reach the gateway can queue work. !!!"
        )


# -- the webhook (raw ASGI: the hot path) ------------------------------------------------------------
PATH_PREFIX = "/webhooks/vmh/beteiligte/"
_JSON_HEADERS = [(b"content-type", b"application/json")]
_WANTED_HEADERS = frozenset({b"signature", b"x-signature", b"content-length"})


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": code, "message": message, **extra}


def _refuse(event: str, status: int, code: str, message: str, **extra: Any) -> _Refused:
    ERRORS.labels(event, str(status)).inc()
    return _Refused(status, code, message, **extra)


class _ClientGone(Exception):
    """The client disconnected (or the server's body deadline ended the request) before the body was in."""


async def _read_limited(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> tuple[bytes, bool]:
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
        res.in_background(lambda: _drain_quietly(res))
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
            res = _resources_of(scope["app"])
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


def _trigger_calendar_quietly(api: AirflowApi, employee: str, dead_letter_id: int) -> None:
    try:
        run = trigger_calendar_retry(api, employee, dead_letter_id)
        log.info("calendar run %s for the replayed item of dead letter %s", run.dag_run_id, dead_letter_id)
    except Exception as exc:  # Airflow down: the next scheduled calendar run retries the item
        log.warning(
            "calendar run for dead letter %s not triggered (%s); the next scheduled run retries it",
            dead_letter_id,
            type(exc).__name__,
        )


def _drain_quietly(res: WebhookResources) -> None:
    try:
        res.drain_rejected()
    except Exception as exc:  # hub down: the entries stay in the Redis outbox
        log.warning("dead-letter outbox not drained: %s", type(exc).__name__)


# -- dead letters ----------------------------------------------------------------------------------
@router.get(
    "/webhooks/dead-letters",
    dependencies=[Depends(require_write)],
    tags=["dead letters"],
    responses=errors(401, 403, 422, 503),
)
def list_dead_letters(
    request: Request,
    include_replayed: bool = False,
    source: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> dict[str, Any]:
    res = resources(request)
    try:
        res.drain_rejected()
        with connect(res.settings.postgres.dsn()) as conn:
            rows = dead_letters.list_(
                conn, include_replayed=include_replayed, source=source, limit=limit, offset=offset
            )
    except _STORE_DOWN as exc:  # Redis or hub down
        log.error("dead letters unavailable: %s", type(exc).__name__)
        raise refusal(503, "store_unavailable", "dead-letter store unavailable") from None
    return {"dead_letters": [dead_letters.to_json(r) for r in rows], "count": len(rows)}


@router.post(
    "/webhooks/dead-letters/{dead_letter_id}/replay",
    dependencies=[Depends(require_write)],
    tags=["dead letters"],
    responses=errors(401, 403, 404, 409, 422, 503),
)
def replay_dead_letter(
    dead_letter_id: Annotated[int, Path(ge=1, le=MAX_DB_INT)], request: Request, background: BackgroundTasks
) -> dict[str, Any]:
    res = resources(request)
    try:
        with Hub(res.settings.postgres.dsn()) as hub:
            row = replay(hub, dead_letter_id, lambda ids: res.sync_queue.enqueue(ids, "replay"))
    except LookupError as exc:
        raise refusal(404, "not_found", str(exc)) from None
    except ValueError as exc:
        raise refusal(409, "already_replayed", str(exc)) from None
    except _STORE_DOWN as exc:
        log.error("replay of dead letter %s failed: %s", dead_letter_id, type(exc).__name__)
        raise refusal(503, "store_unavailable", "queue or dead-letter store unavailable") from None
    if row["source"] == dead_letters.CALENDAR_SOURCE:  # a parked calendar item: a calendar run retries it
        log.info("dead letter %s replayed: calendar item %s released", dead_letter_id, row["entity_id"])
        employee = (row.get("payload") or {}).get("employee")
        if employee and res.airflow is not None:
            background.add_task(_trigger_calendar_quietly, res.airflow, employee, dead_letter_id)
        return {"replayed": row}
    log.info("dead letter %s replayed: id %s queued again", dead_letter_id, row["entity_id"])
    background.add_task(res.trigger_once)
    return {"replayed": row}
