"""Webhooks of the EspoCRM sandbox: subscriptions, the per-webhook item queue and the sender.

Mirrors `Espo\\Core\\Webhook\\Queue` and `Sender`: items are queued per webhook in order; a pass
sends the due ones in batches (JSON array, at most `batch_size`), signs the raw body with the
webhook's secret (`Signature` and legacy `X-Signature`), and judges the answer:
2xx/3xx delivered; 410 deletes the webhook; 401/403/404/405/408/500/503 and connection errors are
retried (`max_attempts` in all, `retry_delay_s` apart), then dropped as failed; any other status
fails at once.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import certifi
import httpx

from sandbox.espocrm.store import new_id, now_stamp

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({401, 403, 404, 405, 408, 500, 503})
EVENT_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.(create|update|delete|fieldUpdate\.[A-Za-z0-9_]+)$")


@dataclass
class QueueItem:
    number: int
    data: dict[str, Any]
    attempts: int = 0
    process_at: float | None = None  # monotonic; None = due now
    status: str = "pending"  # pending | success | failed


@dataclass
class Webhook:
    id: str
    event: str
    url: str
    secret_key: str
    skip_own: bool
    user_id: str
    created_at: str
    is_active: bool = True
    items: list[QueueItem] = field(default_factory=list)

    def as_api(self) -> dict[str, Any]:
        entity, _, rest = self.event.partition(".")
        kind, _, fld = rest.partition(".")
        return {
            "id": self.id,
            "event": self.event,
            "url": self.url,
            "isActive": self.is_active,
            "userId": self.user_id,
            "entityType": entity,
            "type": kind,
            "field": fld or None,
            "secretKey": self.secret_key,
            "skipOwn": self.skip_own,
            "createdAt": self.created_at,
            "modifiedAt": self.created_at,
        }

    def pending(self) -> int:
        return sum(1 for it in self.items if it.status == "pending")


@dataclass
class SenderConfig:
    auto_flush_s: float = 0.0  # 0 = only POST /_sandbox/webhooks/flush sends
    retry_delay_s: float = 600.0  # EspoCRM: 10 minutes
    batch_size: int = 50
    max_attempts: int = 4
    timeout_s: float = 10.0


@functools.cache
def _tls() -> ssl.SSLContext:
    """Built once: loading the CA bundle for every flush would cost more than the sending."""
    return ssl.create_default_context(cafile=certifi.where())


def encode_body(items: list[dict[str, Any]]) -> bytes:
    """PHP json_encode defaults: ASCII only, escaped slashes, no spaces (verify the RAW bytes!)."""
    return json.dumps(items, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def sign(webhook_id: str, secret_key: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret_key.encode(), body, hashlib.sha256)
    return {
        "Signature": base64.b64encode(f"{webhook_id}:{digest.hexdigest()}".encode()).decode(),
        "X-Signature": base64.b64encode(webhook_id.encode() + b":" + digest.digest()).decode(),
    }


class WebhookHub:
    """All webhooks, their queues, the delivery log and the optional background sender."""

    def __init__(self, config: SenderConfig, on_send: Any = None) -> None:
        self.default_config = config
        self.config = SenderConfig(**vars(config))
        self.webhooks: dict[str, Webhook] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=10_000)
        self._numbers = 0
        self._flush_lock = asyncio.Lock()
        self._auto_task: asyncio.Task[None] | None = None
        self._on_send = on_send or (lambda: None)

    # -- subscriptions ---------------------------------------------------------------------
    def register(self, event: str, url: str, skip_own: bool, user_id: str) -> Webhook:
        hook = Webhook(
            id=new_id(),
            event=event,
            url=url,
            secret_key=secrets.token_hex(16),
            skip_own=skip_own,
            user_id=user_id,
            created_at=now_stamp(),
        )
        self.webhooks[hook.id] = hook
        return hook

    def clear(self) -> None:
        self.stop_auto()
        self.webhooks.clear()
        self.log.clear()
        self.config = SenderConfig(**vars(self.default_config))
        self.start_auto()  # back to the configured default (SANDBOX_ESPOCRM_AUTO_FLUSH_S)

    # -- producing items -------------------------------------------------------------------
    def emit(self, event: str, data: dict[str, Any], *, own: bool) -> None:
        for hook in self.webhooks.values():
            if not hook.is_active or hook.event != event or (own and hook.skip_own):
                continue
            self._numbers += 1
            hook.items.append(QueueItem(self._numbers, dict(data)))

    def emit_create(self, entity: str, record: dict[str, Any], *, own: bool) -> None:
        self.emit(f"{entity}.create", record, own=own)

    def emit_update(self, entity: str, record_id: str, changed: dict[str, Any], *, own: bool) -> None:
        if not changed:
            return
        self.emit(f"{entity}.update", {"id": record_id, **changed}, own=own)
        for name, value in changed.items():
            self.emit(f"{entity}.fieldUpdate.{name}", {"id": record_id, name: value}, own=own)

    def emit_delete(self, entity: str, record_id: str, *, own: bool) -> None:
        self.emit(f"{entity}.delete", {"id": record_id}, own=own)

    # -- sending ---------------------------------------------------------------------------
    async def flush(self) -> list[dict[str, Any]]:
        """One pass: send every due item once (a retried item waits for its next pass)."""
        async with self._flush_lock:
            outcomes: list[dict[str, Any]] = []
            async with httpx.AsyncClient(timeout=self.config.timeout_s, verify=_tls()) as client:
                for hook in list(self.webhooks.values()):
                    tried: set[int] = set()
                    while hook.id in self.webhooks:
                        now = time.monotonic()
                        due = [
                            it
                            for it in hook.items
                            if it.status == "pending"
                            and it.number not in tried
                            and (it.process_at is None or it.process_at <= now)
                        ]
                        due = due[: self.config.batch_size]
                        if not due:
                            break
                        tried.update(it.number for it in due)
                        outcomes.append(await self._send(client, hook, due))
                    hook.items = [it for it in hook.items if it.status == "pending"]
            return outcomes

    async def _send(self, client: httpx.AsyncClient, hook: Webhook, batch: list[QueueItem]) -> dict[str, Any]:
        body = encode_body([it.data for it in batch])
        headers = {"Content-Type": "application/json", **sign(hook.id, hook.secret_key, body)}
        attempt = max(it.attempts for it in batch) + 1
        status: int | None = None
        error: str | None = None
        self._on_send()
        try:
            response = await client.post(hook.url, content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:  # connection refused, reset, timeout: retried (EspoCRM 9.x)
            error = type(exc).__name__
        if status is not None and 200 <= status < 400:
            result = "delivered"
            for it in batch:
                it.status = "success"
        elif status == 410:
            result = "webhook_deleted"
            self.webhooks.pop(hook.id, None)
            for it in batch:
                it.status = "failed"
        elif status is None or status in RETRY_STATUSES:
            result = self._fail(batch, force=False)
        else:
            result = self._fail(batch, force=True)
        entry = {
            "webhook_id": hook.id,
            "event": hook.event,
            "url": hook.url,
            "status": status,
            "error": error,
            "attempt": attempt,
            "items": len(batch),
            "result": result,
            "ids": [it.data.get("id") for it in batch],
            "at": now_stamp(),
        }
        self.log.append(entry)
        log.info("webhook %s batch of %d: %s (status %s, attempt %d)", hook.id, len(batch), result, status, attempt)
        return entry

    def _fail(self, batch: list[QueueItem], *, force: bool) -> str:
        retrying = False
        for it in batch:
            it.attempts += 1
            if force or it.attempts >= self.config.max_attempts:
                it.status, it.process_at = "failed", None
            else:
                it.process_at = time.monotonic() + self.config.retry_delay_s
                retrying = True
        return "retry" if retrying else "failed"

    # -- background sender -----------------------------------------------------------------
    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        for name in ("auto_flush_s", "retry_delay_s", "timeout_s"):
            if body.get(name) is not None:
                setattr(self.config, name, max(0.0, float(body[name])))
        if body.get("batch_size") is not None:
            self.config.batch_size = max(1, int(body["batch_size"]))
        if body.get("max_attempts") is not None:
            self.config.max_attempts = max(1, int(body["max_attempts"]))
        self.stop_auto()
        self.start_auto()
        return vars(self.config).copy()

    def start_auto(self) -> None:
        if self.config.auto_flush_s > 0 and self._auto_task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not serving yet: the app's lifespan starts it
                return
            self._auto_task = loop.create_task(self._auto_loop())

    def stop_auto(self) -> None:
        if self._auto_task is not None:
            self._auto_task.cancel()
            self._auto_task = None

    async def _auto_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.auto_flush_s)
            try:
                await self.flush()
            except Exception:  # keep the sender alive, like EspoCRM's scheduled job
                log.exception("webhook flush failed")
