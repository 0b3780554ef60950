"""Google's JSON error bodies, exactly in the shape of the Calendar errors guide.

{"error": {"errors": [{"domain", "reason", "message", "locationType"?, "location"?}],
           "code": 409, "message": "..."}}
"""

from __future__ import annotations

from typing import Any

# reason -> (domain, message) as listed in https://developers.google.com/workspace/calendar/api/guides/errors
CATALOGUE: dict[str, tuple[str, str]] = {
    "badRequest": ("global", "Bad Request"),
    "invalid": ("global", "Invalid Value"),
    "required": ("global", "Required"),
    "timeRangeEmpty": ("calendar", "The specified time range is empty."),
    "authError": ("global", "Invalid Credentials"),
    "insufficientPermissions": (
        "global",
        "Insufficient Permission: Request had insufficient authentication scopes.",
    ),
    "userRateLimitExceeded": ("usageLimits", "User Rate Limit Exceeded"),
    "rateLimitExceeded": ("usageLimits", "Rate Limit Exceeded"),
    "quotaExceeded": ("usageLimits", "Calendar usage limits exceeded."),
    "forbiddenForNonOrganizer": (
        "calendar",
        "Shared properties can only be changed by the organizer of the event.",
    ),
    "requiredAccessLevel": ("calendar", "You need to have writer access to this calendar."),
    "notFound": ("global", "Not Found"),
    "duplicate": ("global", "The requested identifier already exists."),
    "conflict": ("global", "Conflict"),
    "fullSyncRequired": ("calendar", "Sync token is no longer valid, a full sync is required."),
    "updatedMinTooLongAgo": ("calendar", "The requested minimum modification time lies too far in the past."),
    "deleted": ("global", "Resource has been deleted"),
    "conditionNotMet": ("global", "Precondition Failed"),
    "backendError": ("global", "Backend Error"),
    "serviceUnavailable": ("global", "The service is currently unavailable."),
}

# What an injected fault without an explicit reason looks like, by status.
DEFAULT_REASON: dict[int, str] = {
    400: "badRequest",
    401: "authError",
    403: "rateLimitExceeded",
    404: "notFound",
    409: "duplicate",
    410: "deleted",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
    504: "backendError",
}


class GoogleError(Exception):
    """An API error; `body()` renders it as Google does."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str | None = None,
        *,
        domain: str | None = None,
        location: str | None = None,
        location_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        cat_domain, cat_message = CATALOGUE.get(reason, ("global", reason))
        self.code = code
        self.reason = reason
        self.message = message or cat_message
        self.domain = domain or cat_domain
        self.location = location
        self.location_type = location_type
        self.headers = headers or {}
        super().__init__(f"{code} {reason}: {self.message}")

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location is not None:
            item["locationType"] = self.location_type or "parameter"
            item["location"] = self.location
        return {"error": {"errors": [item], "code": self.code, "message": self.message}}


def not_found() -> GoogleError:
    return GoogleError(404, "notFound")


def bad_param(name: str, message: str, reason: str = "invalid") -> GoogleError:
    return GoogleError(400, reason, message, location=name, location_type="parameter")


def invalid(message: str) -> GoogleError:
    return GoogleError(400, "invalid", message)


def required(message: str) -> GoogleError:
    return GoogleError(400, "required", message)


def from_fault(status: int, reason: str | None, retry_after: int | None) -> GoogleError:
    """Render an injected fault (sandbox.common.FaultSpec) in Google's shape."""
    reason = reason or DEFAULT_REASON.get(status, "backendError")
    message = None
    if status == 503 and reason == "backendError":
        message = CATALOGUE["serviceUnavailable"][1]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return GoogleError(status, reason, message, headers=headers)
