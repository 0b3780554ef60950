"""Advoware REST API: client (sync and async), shared token cache, typed errors, write protection."""

from include.advoware.client import AdvowareClient
from include.advoware.errors import (
    AdvowareAuthError,
    AdvowareConflict,
    AdvowareConnectionError,
    AdvowareError,
    AdvowareNotFound,
    AdvowareRateLimited,
    AdvowareRequestError,
    AdvowareTimeout,
    AdvowareUnavailable,
    WriteProtectedError,
)

__all__ = [
    "AdvowareAuthError",
    "AdvowareClient",
    "AdvowareConflict",
    "AdvowareConnectionError",
    "AdvowareError",
    "AdvowareNotFound",
    "AdvowareRateLimited",
    "AdvowareRequestError",
    "AdvowareTimeout",
    "AdvowareUnavailable",
    "WriteProtectedError",
]
