"""Push notifications as Google sends them (guides/push): watch channels on a calendar's events and
their messages, posted by a background thread, never inside the request that made the change.

A channel opens with a `sync` message (number 1); every later change to the calendar's events (the
caller's own writes included) is an `exists` message with the next number. The body is empty; the
headers are Google's (X-Goog-Channel-ID, -Token when set, -Expiration in RFC 1123, X-Goog-Resource-ID,
-URI, -State, X-Goog-Message-Number). Google retries with exponential backoff only after 500, 502, 503
or 504 (and here: a connection error); any other answer ends the message. Stopped and expired channels
deliver nothing, queued messages and retries included.

Knobs (Config, `POST /_sandbox/config`): push_max_ttl_s (the cap on a channel's lifetime; Google's
default and maximum for events is 604800 s), push_delay_s (change -> message), push_batch_s (changes of
one channel within this window become one message), push_loss and push_duplicates (shares of messages
dropped or sent twice, drawn from a Random seeded with push_seed), push_retry_base_s and
push_max_attempts (the backoff), push_require_https (Google refuses plain http addresses; the demo's
gateway speaks http, so off by default).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol

import httpx

from .errors import GoogleError, invalid, required

CHANNEL_ID = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")  # Google: at most 64 characters
MAX_TOKEN = 256
RETRY_STATUSES = frozenset({500, 502, 503, 504})
RESOURCE_URI = "https://www.googleapis.com/calendar/v3/calendars/{calendar}/events?alt=json"
LOG_SIZE = 2000


class PushConfig(Protocol):
    push_max_ttl_s: float
    push_delay_s: float
    push_batch_s: float
    push_loss: float
    push_duplicates: float
    push_seed: int
    push_retry_base_s: float
    push_max_attempts: int
    push_require_https: bool


@dataclass
class Channel:
    id: str
    resource_id: str
    resource_uri: str
    calendar_id: str
    principal: str
    address: str
    token: str | None
    expiration_ms: int
    next_number: int = 1
    stopped: bool = False
    pending: Message | None = None  # queued, not yet sent: later changes may join it (batching)

    def live(self, now_ms: int) -> bool:
        return not self.stopped and now_ms < self.expiration_ms

    def resource(self) -> dict[str, Any]:
        res: dict[str, Any] = {
            "kind": "api#channel",
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "expiration": str(self.expiration_ms),
        }
        if self.token is not None:
            res["token"] = self.token
        return res


@dataclass
class Message:
    channel: Channel
    number: int
    state: str  # sync | exists
    changes: int = 1
    attempt: int = 0
    duplicate: bool = False

    def headers(self) -> dict[str, str]:
        ch = self.channel
        headers = {
            "X-Goog-Channel-ID": ch.id,
            "X-Goog-Channel-Expiration": formatdate(ch.expiration_ms / 1000, usegmt=True),
            "X-Goog-Resource-ID": ch.resource_id,
            "X-Goog-Resource-URI": ch.resource_uri,
            "X-Goog-Resource-State": self.state,
            "X-Goog-Message-Number": str(self.number),
        }
        if ch.token is not None:
            headers["X-Goog-Channel-Token"] = ch.token
        return headers


def resource_id_of(calendar_id: str) -> str:
    """Google's opaque, stable id of the watched resource (the same for every channel on it)."""
    return hashlib.sha1(f"events:{calendar_id}".encode()).hexdigest()[:27]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    message: Message = field(compare=False)


class PushHub:
    """The channels of one sandbox state and the thread that delivers their messages."""

    def __init__(self, config: PushConfig) -> None:
        self.config = config
        self.channels: dict[str, Channel] = {}
        self.counts: Counter[str] = Counter()
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self._queue: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._random = random.Random(config.push_seed)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._client: httpx.Client | None = None

    # -- the API -----------------------------------------------------------------------------
    def watch(self, principal: str, calendar_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise GoogleError(400, "parseError", "Parse Error")
        channel_id, kind, address = body.get("id"), body.get("type"), body.get("address")
        if not channel_id:
            raise required("Required channel id.")
        if not isinstance(channel_id, str) or not CHANNEL_ID.match(channel_id):
            raise invalid(f"Invalid channel id: '{channel_id}'.")
        if not kind:
            raise required("Required channel type.")
        if kind not in ("web_hook", "webhook"):
            raise invalid(f"Invalid value for channel type: '{kind}'.")
        if not address:
            raise required("Required channel address.")
        if not str(address).startswith(("http://", "https://")):
            raise invalid(f"Invalid webhook address: '{address}'.")
        if self.config.push_require_https and not str(address).startswith("https://"):
            raise GoogleError(
                400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}", domain="global"
            )
        token = body.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN):
            raise invalid(f"A channel token may hold at most {MAX_TOKEN} characters.")
        now = _now_ms()
        expiration = self._expiration(body, now)
        with self._cond:
            if channel_id in self.channels:
                raise GoogleError(400, "channelIdNotUnique", f"Channel id {channel_id} not unique", domain="global")
            channel = Channel(
                channel_id,
                resource_id_of(calendar_id),
                RESOURCE_URI.format(calendar=calendar_id),
                calendar_id,
                principal,
                str(address),
                token,
                expiration,
            )
            self.channels[channel_id] = channel
            self.counts["channels_opened"] += 1
            self._enqueue(Message(channel, self._number(channel), "sync"), time.monotonic())
        return channel.resource()

    def _expiration(self, body: dict[str, Any], now: int) -> int:
        cap = now + int(self.config.push_max_ttl_s * 1000)
        wanted: int | None = None
        if body.get("expiration") not in (None, ""):
            try:
                wanted = int(body["expiration"])
            except (TypeError, ValueError) as exc:
                raise invalid(f"Invalid value for expiration: '{body['expiration']}'.") from exc
        ttl = (body.get("params") or {}).get("ttl") if isinstance(body.get("params"), dict) else None
        if wanted is None and ttl not in (None, ""):
            try:
                wanted = now + int(float(ttl) * 1000)
            except (TypeError, ValueError) as exc:
                raise invalid(f"Invalid value for ttl: '{ttl}'.") from exc
        return cap if wanted is None else min(wanted, cap)

    def stop(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise GoogleError(400, "parseError", "Parse Error")
        channel_id, resource_id = body.get("id"), body.get("resourceId")
        if not channel_id:
            raise required("Required channel id.")
        if not resource_id:
            raise required("Required resourceId.")
        with self._cond:
            channel = self.channels.get(channel_id)
            if channel is None or channel.stopped or channel.resource_id != resource_id:
                raise GoogleError(404, "notFound", f"Channel '{channel_id}' not found for project.")
            channel.stopped = True
            channel.pending = None
            self.counts["channels_stopped"] += 1

    def changed(self, calendar_id: str) -> None:
        """One change to the calendar's events: an `exists` message on each live channel watching it."""
        now_ms, now = _now_ms(), time.monotonic()
        with self._cond:
            for channel in self.channels.values():
                if channel.calendar_id != calendar_id or not channel.live(now_ms):
                    continue
                self.counts["changes"] += 1
                if channel.pending is not None and self.config.push_batch_s > 0:
                    channel.pending.changes += 1
                    self.counts["batched"] += 1
                    continue
                message = Message(channel, self._number(channel), "exists")
                if self.config.push_batch_s > 0:
                    channel.pending = message
                self._enqueue(message, now + self.config.push_delay_s + self.config.push_batch_s)

    # -- admin -------------------------------------------------------------------------------
    def expire(self, channel_id: str | None = None) -> list[str]:
        """Let channels expire now (all, or the one named), as Google's clock would."""
        now = _now_ms()
        with self._cond:
            hit = [c for c in self.channels.values() if channel_id in (None, c.id) and c.live(now)]
            for channel in hit:
                channel.expiration_ms = now
                channel.pending = None
        return [c.id for c in hit]

    def reset(self) -> None:
        with self._cond:
            for channel in self.channels.values():
                channel.stopped = True
            self.channels = {}
            self._queue.clear()
            self.counts.clear()
            self.log.clear()
            self._random = random.Random(self.config.push_seed)
            self._cond.notify_all()

    def reseed(self) -> None:
        with self._cond:
            self._random = random.Random(self.config.push_seed)

    def state(self) -> dict[str, Any]:
        now = _now_ms()
        with self._cond:
            return {
                "channels": [
                    {
                        **c.resource(),
                        "calendarId": c.calendar_id,
                        "address": c.address,
                        "state": "stopped" if c.stopped else ("active" if c.live(now) else "expired"),
                        "messages": c.next_number - 1,
                    }
                    for c in self.channels.values()
                ],
                "counts": dict(self.counts),
                "queued": len(self._queue),
                "deliveries": list(self.log),
            }

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- delivery ----------------------------------------------------------------------------
    @staticmethod
    def _number(channel: Channel) -> int:
        number = channel.next_number
        channel.next_number += 1
        return number

    def _enqueue(self, message: Message, at: float) -> None:
        """Queue a message (caller holds the lock) and make sure the delivery thread runs."""
        heapq.heappush(self._queue, _Due(at, next(self._seq), message))
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="google-push", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _next(self) -> Message | None:
        with self._cond:
            while not self._closed:
                if not self._queue:
                    self._cond.wait(timeout=5.0)
                    continue
                wait = self._queue[0].at - time.monotonic()
                if wait > 0:
                    self._cond.wait(timeout=wait)
                    continue
                message = heapq.heappop(self._queue).message
                channel = message.channel
                if channel.pending is message:
                    channel.pending = None  # sent now: later changes make a new message
                if not channel.live(_now_ms()) or self.channels.get(channel.id) is not channel:
                    self.counts["dropped_dead_channel"] += 1
                    continue
                if message.attempt == 0 and not message.duplicate:
                    if self._random.random() < self.config.push_loss:
                        self.counts["lost"] += 1
                        self._note(message, "lost", None)
                        continue
                    if self._random.random() < self.config.push_duplicates:
                        twin = Message(channel, message.number, message.state, message.changes, duplicate=True)
                        heapq.heappush(self._queue, _Due(time.monotonic(), next(self._seq), twin))
                        self.counts["duplicated"] += 1
                return message
        return None

    def _run(self) -> None:
        client = httpx.Client(timeout=10.0)
        try:
            while (message := self._next()) is not None:
                self._deliver(client, message)
        finally:
            client.close()

    def _deliver(self, client: httpx.Client, message: Message) -> None:
        message.attempt += 1
        status: int | None
        try:
            status = client.post(message.channel.address, headers=message.headers(), content=b"").status_code
        except httpx.HTTPError:
            status = None
        with self._cond:
            self.counts["attempts"] += 1
            if status is not None and 200 <= status < 300:
                self.counts["delivered"] += 1
                self._note(message, "delivered", status)
            elif (status is None or status in RETRY_STATUSES) and message.attempt < self.config.push_max_attempts:
                self.counts["retried"] += 1
                self._note(message, "retry", status)
                backoff = self.config.push_retry_base_s * 2 ** (message.attempt - 1)
                heapq.heappush(self._queue, _Due(time.monotonic() + backoff, next(self._seq), message))
            else:
                self.counts["failed"] += 1
                self._note(message, "failed", status)

    def _note(self, message: Message, outcome: str, status: int | None) -> None:
        self.log.append(
            {
                "channel": message.channel.id,
                "number": message.number,
                "state": message.state,
                "changes": message.changes,
                "attempt": message.attempt,
                "outcome": outcome,
                "status": status,
                "duplicate": message.duplicate,
                "at": time.time(),
            }
        )
