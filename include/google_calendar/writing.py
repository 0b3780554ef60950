"""Writing events: idempotent inserts (deterministic id; 409 duplicate -> adopt), patches guarded
by If-Match (412 -> re-fetch, typed conflict), deletes that treat 410/404 as done, and batches of
at most 50 calls in which each failed part is retried on its own. sendUpdates=none everywhere:
the sync must never mail attendees.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from include.google_calendar.errors import (
    ApiError,
    EtagConflict,
    QuotaExceeded,
    classify,
    describe,
    error_info,
)
from include.google_calendar.ratelimit import Grant
from include.google_calendar.service import CalendarSession

log = logging.getLogger(__name__)

SEND_UPDATES = "none"
MAX_BATCH = 50

Kind = Literal["insert", "patch", "delete"]
Outcome = Literal[
    "created",  # inserted now
    "adopted",  # the id existed (our earlier insert whose answer was lost): brought up to date
    "undeleted",  # the id existed as cancelled and the caller asked to restore it
    "deleted_in_google",  # the id existed as cancelled and the caller did not ask to restore it
    "patched",
    "missing",  # patch of an event that does not exist
    "conflict",  # 412: changed since read; `current` holds the fresh copy
    "deleted",
    "already_deleted",  # 410 deleted / 404 on delete: nothing left to do
    "failed",  # a final error (e.g. 400 invalid); `error` says which
]


@dataclass(frozen=True)
class WriteOp:
    kind: Kind
    event_id: str
    body: dict[str, Any] | None = None
    etag: str | None = None
    undelete: bool = False  # on a 409 that meets a cancelled event: restore it?
    ref: Any = None  # the caller's key (e.g. frNr), handed back in the result

    @classmethod
    def insert(cls, event_id: str, body: dict[str, Any], *, undelete: bool = False, ref: Any = None) -> WriteOp:
        return cls("insert", event_id, body, None, undelete, ref)

    @classmethod
    def patch(cls, event_id: str, changes: dict[str, Any], *, etag: str | None = None, ref: Any = None) -> WriteOp:
        return cls("patch", event_id, changes, etag, False, ref)

    @classmethod
    def delete(cls, event_id: str, *, etag: str | None = None, ref: Any = None) -> WriteOp:
        return cls("delete", event_id, None, etag, False, ref)


@dataclass
class WriteResult:
    op: WriteOp
    outcome: Outcome
    event: dict[str, Any] | None = None  # the event as Google holds it now (None after a delete)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome not in ("failed", "conflict", "missing")


def _covers(current: dict[str, Any], body: dict[str, Any]) -> bool:
    """Does the stored event already hold every field we meant to write?"""
    for key, value in body.items():
        if key == "id":
            continue
        if key == "extendedProperties":
            for scope, props in (value or {}).items():
                have = (current.get("extendedProperties") or {}).get(scope) or {}
                if any(have.get(k) != v for k, v in (props or {}).items()):
                    return False
        elif current.get(key) != value:
            return False
    return True


class EventWriter:
    """Writes into one calendar through one session (its quota user and limiter)."""

    def __init__(self, session: CalendarSession, calendar_id: str, *, batch_size: int = MAX_BATCH) -> None:
        self.session = session
        self.calendar_id = calendar_id
        self.batch_size = max(1, min(batch_size, MAX_BATCH))

    # -- single calls (raise on conflict / failure) -------------------------------------------
    def insert(self, event_id: str, body: dict[str, Any], *, undelete: bool = False) -> WriteResult:
        return self._raise_unless_ok(self.apply(WriteOp.insert(event_id, body, undelete=undelete)))

    def patch(self, event_id: str, changes: dict[str, Any], *, etag: str | None = None) -> WriteResult:
        """Raises EtagConflict (with the fresh event) when `etag` is stale."""
        return self._raise_unless_ok(self.apply(WriteOp.patch(event_id, changes, etag=etag)))

    def delete(self, event_id: str, *, etag: str | None = None) -> WriteResult:
        return self._raise_unless_ok(self.apply(WriteOp.delete(event_id, etag=etag)))

    def get(self, event_id: str) -> dict[str, Any] | None:
        """The event, cancelled ones included; None if it does not exist."""
        try:
            return self.session.execute(
                lambda s: s.events().get(calendarId=self.calendar_id, eventId=event_id), "events.get"
            )
        except HttpError as exc:
            if error_info(exc).status in (404, 410):
                return None
            raise

    def _raise_unless_ok(self, result: WriteResult) -> WriteResult:
        if result.outcome == "conflict":
            raise EtagConflict(self.calendar_id, result.op.event_id, result.event)
        if result.outcome in ("failed", "missing"):
            raise ApiError(f"events.{result.op.kind}", 0, result.outcome, result.error or "")
        return result

    def apply(self, op: WriteOp) -> WriteResult:
        """One write with rate limiting and backoff; conflicts and failures come back as results."""
        try:
            response = self.session.execute(lambda s: self._request(s, op), f"events.{op.kind}")
        except HttpError as exc:
            return self._after_error(op, exc)
        return self._success(op, response)

    # -- batches -----------------------------------------------------------------------------
    def write_many(self, ops: Sequence[WriteOp], *, parallel: int = 1) -> list[WriteResult]:
        """All ops in batches of <= 50; results in the order of `ops`.

        Each batch is sized to the budget the limiter grants at that moment, so nothing is sent
        that the quota would refuse. `parallel` > 1 keeps that many smaller batches in flight (the
        window's budget split between them), for servers that work through a batch's parts one by
        one. A part refused for a passing reason (429, 403 rate limit, 5xx) is retried on its own
        after a backoff; other part errors are resolved like single calls (409 adopt, 412 conflict).
        403 quotaExceeded stops everything: QuotaExceeded is raised with the finished results.
        """
        results: list[WriteResult | None] = [None] * len(ops)
        limit = self.session.limiter.limit if self.session.limiter is not None else self.batch_size
        chunk = self.batch_size if parallel <= 1 else max(1, min(self.batch_size, -(-limit // parallel)))
        state = {"pos": 0}
        take_lock = threading.Lock()
        failures: list[BaseException] = []

        def worker() -> None:
            while not failures:
                with take_lock:  # one worker at a time waits for budget, then takes its ops
                    pos = state["pos"]
                    if pos >= len(ops) or failures:
                        return
                    grant = self.session.acquire_up_to(min(chunk, len(ops) - pos))
                    idx = list(range(pos, pos + grant.n))
                    state["pos"] = pos + grant.n
                try:
                    self._run_batch(ops, idx, grant, results)
                except BaseException as exc:  # stop the others; re-raised below
                    failures.append(exc)
                    return

        if parallel <= 1:
            worker()
        else:
            with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="gcal-batch") as pool:
                for future in [pool.submit(worker) for _ in range(parallel)]:
                    future.result()
        done = [r for r in results if r is not None]
        if failures:
            exc = failures[0]
            if isinstance(exc, QuotaExceeded):
                exc.results = done
            raise exc
        return done

    def _run_batch(
        self, ops: Sequence[WriteOp], idx: list[int], grant: Grant, results: list[WriteResult | None]
    ) -> None:
        answers = self.session.execute_batch(
            [functools.partial(self._request, op=ops[i]) for i in idx], grant=grant, operation="batch"
        )
        retry: list[int] = []
        quota: BaseException | None = None
        first_retryable: BaseException | None = None
        for i, (response, exc) in zip(idx, answers, strict=True):
            if exc is None:
                results[i] = self._success(ops[i], response)
                continue
            verdict = classify(exc)
            if verdict == "quota":
                quota = exc
            elif verdict == "retry":
                retry.append(i)
                first_retryable = first_retryable or exc
            else:
                results[i] = self._after_error(ops[i], exc)
        if quota is not None:
            raise QuotaExceeded(self.session.quota_user, "batch", describe(quota))
        if retry:
            backoff = self.session.backoff
            log.info(
                "batch on calendar %s: %d of %d parts to retry (%s)",
                self.calendar_id,
                len(retry),
                len(idx),
                describe(first_retryable) if first_retryable else "",
            )
            backoff.sleep(backoff.delay(0, first_retryable))
            for i in retry:
                backoff.count_retry()
                results[i] = self.apply(ops[i])

    # -- building blocks ---------------------------------------------------------------------
    def _request(self, service: Any, op: WriteOp) -> HttpRequest:
        events = service.events()
        if op.kind == "insert":
            body = dict(op.body or {})
            body["id"] = op.event_id
            req = events.insert(calendarId=self.calendar_id, body=body, sendUpdates=SEND_UPDATES)
        elif op.kind == "patch":
            req = events.patch(
                calendarId=self.calendar_id, eventId=op.event_id, body=op.body or {}, sendUpdates=SEND_UPDATES
            )
        else:
            req = events.delete(calendarId=self.calendar_id, eventId=op.event_id, sendUpdates=SEND_UPDATES)
        if op.etag and op.kind != "insert":
            req.headers["If-Match"] = op.etag
        return req

    def _success(self, op: WriteOp, response: Any) -> WriteResult:
        if op.kind == "insert":
            return WriteResult(op, "created", response)
        if op.kind == "patch":
            return WriteResult(op, "patched", response)
        return WriteResult(op, "deleted")

    def _after_error(self, op: WriteOp, exc: HttpError) -> WriteResult:
        info = error_info(exc)
        if op.kind == "insert" and info.status == 409:
            return self._adopt(op)
        if info.status == 412:
            return WriteResult(op, "conflict", self.get(op.event_id), describe(exc))
        if op.kind == "delete" and info.status in (404, 410):
            return WriteResult(op, "already_deleted")
        if op.kind == "patch" and info.status in (404, 410):
            return WriteResult(op, "missing", None, describe(exc))
        log.info("events.%s %s on calendar %s failed: %s", op.kind, op.event_id, self.calendar_id, describe(exc))
        return WriteResult(op, "failed", None, describe(exc))

    def _adopt(self, op: WriteOp) -> WriteResult:
        """409 duplicate: the id is taken, normally by our own insert whose answer got lost."""
        current = self.get(op.event_id)
        body = {k: v for k, v in (op.body or {}).items() if k != "id"}
        if current is None:  # taken, yet not readable: nothing we can adopt
            return WriteResult(op, "failed", None, "HTTP 409 duplicate, event not readable")
        if current.get("status") == "cancelled":
            if not op.undelete:
                return WriteResult(op, "deleted_in_google", current)
            restored = self.apply(WriteOp.patch(op.event_id, body | {"status": "confirmed"}))
            return WriteResult(
                op, "undeleted" if restored.outcome == "patched" else restored.outcome, restored.event, restored.error
            )
        if _covers(current, body):
            return WriteResult(op, "adopted", current)
        updated = self.apply(WriteOp.patch(op.event_id, body))
        return WriteResult(
            op, "adopted" if updated.outcome == "patched" else updated.outcome, updated.event, updated.error
        )
