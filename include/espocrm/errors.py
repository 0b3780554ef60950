"""Typed errors of the EspoCRM client. Messages name the method, endpoint and status, never the key."""

from __future__ import annotations

from typing import Any


class EspoCrmError(Exception):
    """Base class: `method`, `endpoint` (path below /api/v1, no query), `status` (None = no answer)."""

    def __init__(self, method: str, endpoint: str, status: int | None, reason: str = "", data: Any = None) -> None:
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.reason = reason
        self.data = data
        self.retry_after: float | None = None  # seconds, from a Retry-After header
        self.attempts = 1  # how many attempts the client made (set by the retry loop)
        self.not_sent = False  # True when the request surely never reached EspoCRM
        answer = f"answered {status}" if status is not None else "gave no answer"
        super().__init__(f"EspoCRM {method} {endpoint} {answer}" + (f" ({reason})" if reason else ""))


class AuthError(EspoCrmError):
    """401: the API key is wrong or the API user is inactive."""


class ForbiddenError(EspoCrmError):
    """403: the API user's role does not allow this (or maxSize over 200)."""


class NotFoundError(EspoCrmError):
    """404: no such record (deleted records answer 404 too)."""


class ConflictError(EspoCrmError):
    """409: stale `X-Version-Number` (reason 'modified'; `data` = current values) or a duplicate."""


class BadRequestError(EspoCrmError):
    """400 and other 4xx that will not succeed when repeated."""


class TransientError(EspoCrmError):
    """429/5xx still failing after the retries."""


class UnavailableError(EspoCrmError):
    """No answer (connection refused, reset, timed out) after the retries."""


# The typed error of an exact status; any other 5xx is TransientError, any other 4xx BadRequestError.
_BY_STATUS: dict[int, type[EspoCrmError]] = {
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    429: TransientError,
}


def error_for(method: str, endpoint: str, status: int, reason: str = "", data: Any = None) -> EspoCrmError:
    cls = _BY_STATUS.get(status) or (TransientError if status >= 500 else BadRequestError)
    return cls(method, endpoint, status, reason, data)
