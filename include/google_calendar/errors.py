"""Typed errors of the Google Calendar client and how an API failure is classified.

Google's error body: {"error": {"errors": [{"domain", "reason", "message", ...}], "code", "message"}}.
The first `errors[].reason` decides what we do (docs/external-apis.md, Google: errors and quotas).
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any, Literal

import httplib2
from googleapiclient.errors import HttpError

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})

Verdict = Literal["retry", "quota", "final"]


class GoogleCalendarError(Exception):
    """Base class of everything this package raises on purpose."""


class QuotaExceeded(GoogleCalendarError):
    """403 quotaExceeded: Workspace usage limits, lasting hours. The affected sync must stop now."""

    def __init__(self, quota_user: str, operation: str, message: str = "") -> None:
        self.quota_user = quota_user
        self.operation = operation
        self.results: list[Any] = []  # a batch writer puts the writes it finished here
        super().__init__(
            f"Google Calendar usage limits exceeded for quota user {quota_user} during {operation}: "
            "the sync of this user is stopped; Google lifts this limit after hours, not minutes "
            f"(server said: {message or 'quotaExceeded'})"
        )


class RetriesExhausted(GoogleCalendarError):
    """A retryable failure (rate limit, 5xx, lost connection) outlasted every retry."""

    def __init__(self, operation: str, attempts: int, last: BaseException) -> None:
        self.operation = operation
        self.attempts = attempts
        self.last = last
        super().__init__(f"{operation} failed after {attempts} attempts: {describe(last)}")


class EtagConflict(GoogleCalendarError):
    """412 conditionNotMet: the event changed since we read it. `current` is the re-fetched event
    (None if it is gone meanwhile), so the caller can merge and decide."""

    def __init__(self, calendar_id: str, event_id: str, current: dict[str, Any] | None) -> None:
        self.calendar_id = calendar_id
        self.event_id = event_id
        self.current = current
        super().__init__(f"event {event_id} changed since it was read (412 conditionNotMet)")


class ApiError(GoogleCalendarError):
    """A final (not retryable) API answer the caller did not expect, e.g. 400 invalid."""

    def __init__(self, operation: str, status: int, reason: str | None, message: str) -> None:
        self.operation = operation
        self.status = status
        self.reason = reason
        super().__init__(f"{operation}: HTTP {status} {reason or ''} {message}".strip())


@dataclass(frozen=True)
class ErrorInfo:
    status: int
    reason: str | None
    message: str


def error_info(exc: HttpError) -> ErrorInfo:
    """Status, first reason and message of an HttpError, parsed defensively."""
    status = int(getattr(exc, "status_code", None) or exc.resp.status)
    reason: str | None = None
    message = ""
    try:
        body = json.loads(exc.content.decode("utf-8") if isinstance(exc.content, bytes) else exc.content)
        err = body.get("error", {}) if isinstance(body, dict) else {}
        if isinstance(err, dict):
            message = str(err.get("message", ""))
            errors = err.get("errors") or []
            if errors and isinstance(errors[0], dict):
                reason = errors[0].get("reason")
                message = message or str(errors[0].get("message", ""))
            reason = reason or err.get("status")
    except (ValueError, AttributeError, TypeError):
        pass
    return ErrorInfo(status, reason, message)


# Transport failures: the request may or may not have reached Google; our writes are idempotent
# (deterministic ids, 409 adopt, 410 on delete), so resending is safe.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, socket.timeout (TimeoutError), ssl errors
    socket.timeout,
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine
    httplib2.HttpLib2Error,
)


def classify(exc: BaseException) -> Verdict:
    """retry: back off and resend; quota: stop the sync (QuotaExceeded); final: report as is."""
    if isinstance(exc, HttpError):
        info = error_info(exc)
        if info.status == 429 or info.status >= 500:
            return "retry"
        if info.status == 403:
            if info.reason in RATE_LIMIT_REASONS:
                return "retry"
            if info.reason == "quotaExceeded":
                return "quota"
        return "final"
    if isinstance(exc, TRANSPORT_ERRORS):
        return "retry"
    return "final"


def describe(exc: BaseException) -> str:
    """Short text for logs and last_error: status and reason only, never a body."""
    if isinstance(exc, HttpError):
        info = error_info(exc)
        return f"HTTP {info.status} {info.reason or ''}".strip()
    return type(exc).__name__


class SyncTokenExpired(GoogleCalendarError):
    """410 fullSyncRequired: the stored sync token is no longer valid; list the window in full."""
