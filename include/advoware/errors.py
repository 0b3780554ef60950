"""Typed Advoware errors. Messages name the method, endpoint and status; never a secret or a body."""

from __future__ import annotations


class AdvowareError(Exception):
    """Base of every Advoware failure."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        endpoint: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.retry_after = retry_after


class AdvowareAuthError(AdvowareError):
    """401/403 from the API (after one token renewal) or a rejected token request."""


class AdvowareNotFound(AdvowareError):
    """404."""


class AdvowareConflict(AdvowareError):
    """409: e.g. a stale `rowId` on a party update."""


class AdvowareRequestError(AdvowareError):
    """Any other 4xx: the request itself is wrong; retrying does not help."""


class AdvowareRateLimited(AdvowareError):
    """429; `retry_after` in seconds when the service said so."""


class AdvowareUnavailable(AdvowareError):
    """5xx (503 with `retry_after`), or the service could not be reached."""


class AdvowareTimeout(AdvowareUnavailable):
    """No answer within the configured timeout."""


class AdvowareConnectionError(AdvowareUnavailable):
    """Connection refused, reset or dropped mid-answer."""


class WriteProtectedError(AdvowareError):
    """ADVOWARE_WRITE_PROTECTION is on: the write never left the process."""


# The typed error of an exact status; any other 5xx is AdvowareUnavailable, any other 4xx AdvowareRequestError.
_BY_STATUS: dict[int, type[AdvowareError]] = {
    401: AdvowareAuthError,
    403: AdvowareAuthError,
    404: AdvowareNotFound,
    409: AdvowareConflict,
    429: AdvowareRateLimited,
}


def error_for_status(
    method: str, endpoint: str, status: int, retry_after: float | None = None, reason: str = ""
) -> AdvowareError:
    """The typed error for an HTTP error status of `method endpoint`."""
    msg = f"Advoware {method} {endpoint} answered {status}"
    if reason:
        msg += f": {reason}"
    kind = _BY_STATUS.get(status) or (AdvowareUnavailable if status >= 500 else AdvowareRequestError)
    return kind(msg, method=method, endpoint=endpoint, status=status, retry_after=retry_after)
