"""`POST /webhooks/google/calendar`: Google's push notifications for the employees' calendars.

Google sends the channel's facts as headers and an empty body (docs/external-apis.md): X-Goog-Channel-ID,
X-Goog-Channel-Token (the per-channel secret we gave events.watch), X-Goog-Resource-ID,
X-Goog-Resource-State (`sync` once when the channel opens, then `exists` per change; `not_exists` is
taken like `exists`), X-Goog-Message-Number (rising per channel), X-Goog-Channel-Expiration.

The channel is looked up in the hub (`calendar_channels`, the only record: Google does not list
channels), its token compared in constant time, its resource id checked. `sync` is answered without
work; a change marks the employee (targeted_runs.py: coalesced, after PUSH_DEBOUNCE_S one targeted run)
and is answered at once. Google retries only 5xx, so every refusal of a notification that can never
become valid is a 4xx, and nothing refused starts a run: 400 a header missing or malformed, 404 an
unknown channel, 403 a wrong token or resource id, 410 a stopped or expired channel. A replayed (or
late, older) message number is answered 200 without a second mark. 503 when the hub or Redis is away
(Google retries: nothing is lost). Logs name the channel, the employee and the message number only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import psycopg
import redis
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.hub import channels
from include.hub.db import Hub
from webhook_gateway.deps import ChannelHubDep, TargetedRunsDep
from webhook_gateway.errors import refusal
from webhook_gateway.log_safe import escape
from webhook_gateway.openapi import errors

log = logging.getLogger("webhook_gateway.google_push")
router = APIRouter()

PATH = "/webhooks/google/calendar"
STATES = ("sync", "exists", "not_exists")
MAX_HEADER = 256  # Google's ids and tokens are short (a token at most 256 characters)
RECEIVED = Counter("vmh_google_push_received_total", "Google calendar notifications received", ["state"])
REJECTED = Counter("vmh_google_push_rejected_total", "Google calendar notifications refused", ["reason"])
REPLAYED = Counter("vmh_google_push_replayed_total", "Notifications whose message number was already seen")
# the hub look-ups (blocking psycopg) get threads of their own, as the proxy's audit does
_HUB_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="google-push")


class NotificationAnswer(BaseModel):
    channel: str
    state: str
    marked: bool  # a targeted run is due for the channel's employee (new, or joined a pending one)
    replay: bool  # the message number was seen before: nothing done


@dataclass(frozen=True)
class _Verdict:
    employee: str
    fresh: bool  # the message number is newer than the last one seen


def _reject(status: int, reason: str, message: str) -> Exception:
    REJECTED.labels(reason).inc()
    return refusal(status, reason, message)


def _check(hub: Hub, channel_id: str, token: str, resource_id: str, message_number: int | None) -> _Verdict:
    """The channel's verdict, in one transaction (blocking: runs on _HUB_POOL)."""
    with hub.transaction() as conn:
        channel = channels.get(conn, channel_id)
        if channel is None:
            raise _reject(404, "unknown_channel", "no such channel")
        # constant time, both as bytes: a forger learns nothing from the answer's timing
        if not hmac.compare_digest(channel.token.encode(), token.encode()):
            raise _reject(403, "bad_token", "the channel token does not match")
        if channel.resource_id is not None and not hmac.compare_digest(
            channel.resource_id.encode(), resource_id.encode()
        ):
            raise _reject(403, "resource_mismatch", "the resource id is not the channel's")
        if channel.state != channels.ACTIVE:
            raise _reject(410, "channel_stopped", "the channel was stopped")
        if channel.expires_at <= datetime.now(UTC):
            raise _reject(410, "channel_expired", "the channel has expired")
        # noted only after the mark is stored (_note): a mark Redis refused is retried by Google
        last = channel.last_message_number
        fresh = message_number is None or last is None or message_number > last
        return _Verdict(channel.employee, fresh)


def _note(hub: Hub, channel_id: str, message_number: int | None) -> bool:
    with hub.transaction() as conn:
        return channels.note_notification(conn, channel_id, message_number)


def _required(value: str | None, name: str) -> str:
    if not value:
        raise _reject(400, "missing_header", f"header {name} is missing")
    return value


@router.post(
    PATH,
    tags=["google"],
    response_model=NotificationAnswer,
    responses=errors(400, 403, 404, 410, 422, 503),
    description="Google Calendar push notifications (events.watch). Headers only, empty body. "
    "`sync` is answered without work; `exists` marks the channel's employee for a "
    "targeted run (coalesced, PUSH_DEBOUNCE_S) and is answered at once. A replayed "
    "message number is answered 200 with `replay: true` and changes nothing.",
)
async def google_notification(
    hub: ChannelHubDep,
    runs: TargetedRunsDep,
    x_goog_channel_id: Annotated[str | None, Header(max_length=MAX_HEADER)] = None,
    x_goog_channel_token: Annotated[str | None, Header(max_length=MAX_HEADER)] = None,
    x_goog_resource_id: Annotated[str | None, Header(max_length=MAX_HEADER)] = None,
    x_goog_resource_state: Annotated[str | None, Header(max_length=32)] = None,
    x_goog_message_number: Annotated[str | None, Header(max_length=32)] = None,
    x_goog_channel_expiration: Annotated[str | None, Header(max_length=64)] = None,
) -> JSONResponse:
    channel_id = _required(x_goog_channel_id, "X-Goog-Channel-ID")
    state = _required(x_goog_resource_state, "X-Goog-Resource-State")
    resource_id = _required(x_goog_resource_id, "X-Goog-Resource-ID")
    if state not in STATES:
        raise _reject(400, "unknown_state", f"X-Goog-Resource-State must be one of {', '.join(STATES)}")
    number: int | None = None
    if x_goog_message_number:
        if not x_goog_message_number.isdigit():
            raise _reject(400, "bad_message_number", "X-Goog-Message-Number is not a number")
        number = int(x_goog_message_number)
    RECEIVED.labels(state).inc()
    loop = asyncio.get_running_loop()
    try:
        verdict = await loop.run_in_executor(
            _HUB_POOL, _check, hub, channel_id, x_goog_channel_token or "", resource_id, number
        )
    except (psycopg.Error, OSError) as exc:
        log.error("google notification on channel %s not checked: hub %s", escape(channel_id, 80), type(exc).__name__)
        raise refusal(503, "store_unavailable", "the hub is unavailable; retry", headers={"Retry-After": "5"}) from None
    except StarletteHTTPException as exc:
        if exc.status_code < 500:
            log.info(
                "google notification refused on channel %s: %s",
                escape(channel_id, 80),
                exc.detail.get("error") if isinstance(exc.detail, dict) else exc,
            )
        raise
    marked = False
    if state != "sync" and verdict.fresh:
        if runs.enabled:
            try:
                await runs.mark(verdict.employee, "push")
                marked = True
            except (redis.RedisError, OSError) as exc:
                log.error(
                    "google notification on channel %s: mark not stored (%s)",
                    escape(channel_id, 80),
                    type(exc).__name__,
                )
                raise refusal(
                    503, "queue_unavailable", "the change could not be stored; retry", headers={"Retry-After": "5"}
                ) from None
    if verdict.fresh:
        try:
            await loop.run_in_executor(_HUB_POOL, _note, hub, channel_id, number)
        except (psycopg.Error, OSError) as exc:  # marked already: a retry by Google would only coalesce
            log.warning(
                "google notification on channel %s: message number not noted (%s)",
                escape(channel_id, 80),
                type(exc).__name__,
            )
    else:
        REPLAYED.inc()
    log.info(
        "google notification channel=%s employee=%s state=%s message=%s%s",
        escape(channel_id, 80),
        verdict.employee,
        state,
        number if number is not None else "-",
        " (replay)" if not verdict.fresh else (" marked" if marked else ""),
    )
    return JSONResponse({"channel": channel_id, "state": state, "marked": marked, "replay": not verdict.fresh})
