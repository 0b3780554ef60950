"""What the sync and the async Advoware client decide alike, without doing any I/O.

Request paths, the write gate, the retry policy, when a token is renewed, how an answer or a lost
connection becomes a typed error, and how the token answer is read. Each client keeps only its
transport (httpx, aiohttp) and calls in here for every decision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

from include.advoware.errors import (
    AdvowareAuthError,
    AdvowareConnectionError,
    AdvowareError,
    AdvowareRateLimited,
    AdvowareTimeout,
    AdvowareUnavailable,
    WriteProtectedError,
    error_for_status,
)
from include.advoware.token_cache import Token
from include.retry import RetryPolicy, RetryState, failure_of, next_wait_of, retry_after_of
from include.settings import AdvowareSettings

log = logging.getLogger("include.advoware")

API_PREFIX = "/api/v1/advonet/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
Params = Mapping[str, Any] | list[tuple[str, Any]] | None


class Answer(Protocol):
    """What an error is made from: an httpx.Response or the async client's RawResponse."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> object: ...  # read by retry_after_of only


A = TypeVar("A", bound=Answer)


# -- requests ---------------------------------------------------------------------------------------
def endpoint_of(path: str) -> str:
    """The resource path named in logs and errors: no query string (it may carry ids of clients)."""
    return path.split("?", 1)[0].strip("/")


def check_write(settings: AdvowareSettings, method: str, endpoint: str) -> None:
    if settings.write_protection and method in WRITE_METHODS:
        raise WriteProtectedError(
            f"Advoware write protection is on (ADVOWARE_WRITE_PROTECTION=true): {method} {endpoint} was not sent",
            method=method,
            endpoint=endpoint,
        )


def start(settings: AdvowareSettings, method: str, path: str) -> tuple[str, str]:
    """(method, endpoint) of a call about to be made; a gated write raises before anything is sent,
    the token request included."""
    method = method.upper()
    endpoint = endpoint_of(path)
    check_write(settings, method, endpoint)
    return method, endpoint


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_date(value: date | datetime | str) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, date | datetime) else str(value)


# -- answers ----------------------------------------------------------------------------------------
def error_for_response(resp: Answer, method: str, endpoint: str) -> AdvowareError:
    return error_for_status(method, endpoint, resp.status_code, retry_after_of(resp))


def checked(resp: A, check: bool, method: str, endpoint: str) -> A:
    """The answer, or (with `check`) the typed error of its error status raised."""
    if check and resp.status_code >= 400:
        raise error_for_response(resp, method, endpoint)
    return resp


def renew_after(resp: Answer, method: str, endpoint: str) -> bool:
    """True for a 401: the request was rejected before anything happened, so the token is renewed
    once and the call repeated."""
    if resp.status_code != 401:
        return False
    log.info("advoware %s %s answered 401: renewing the token once", method, endpoint)
    return True


def log_answer(resp: Answer, method: str, endpoint: str, started: float) -> None:
    """`started` is the time.perf_counter() before the first send."""
    log.debug(
        "advoware %s %s %d %.1fms",
        method,
        endpoint,
        resp.status_code,
        (time.perf_counter() - started) * 1000,
    )


def transport_error(
    exc: BaseException, method: str, endpoint: str, *, timed_out: bool, unreachable: bool
) -> AdvowareError:
    """The typed error of a call that got no answer; each transport says which of its exceptions is a
    timeout and which one means the service was never reached."""
    kind = type(exc).__name__
    if timed_out:
        return AdvowareTimeout(
            f"Advoware {method} {endpoint}: no answer in time ({kind})", method=method, endpoint=endpoint
        )
    what = "unreachable" if unreachable else "connection dropped"
    return AdvowareConnectionError(f"Advoware {method} {endpoint}: {what} ({kind})", method=method, endpoint=endpoint)


# -- retries ----------------------------------------------------------------------------------------
def retryable(exc: BaseException) -> bool:
    return isinstance(exc, AdvowareRateLimited | AdvowareUnavailable)


def retry_policy(max_retries: int, base_s: float, max_s: float) -> RetryPolicy:
    """The client's policy (include/retry.py): ADVOWARE_MAX_RETRIES retries after the first attempt,
    waits base·2^(n-1)·uniform(1, 2), at most `max_s`, at least a Retry-After (capped as well)."""
    return RetryPolicy(
        attempts=max(max_retries, 0) + 1, base_s=base_s, max_s=max_s, jitter=(1.0, 2.0), retryable=retryable
    )


def log_retry(method: str, endpoint: str) -> Callable[[RetryState], None]:
    """The policy's before_sleep callback of one call."""

    def _log(state: RetryState) -> None:
        exc = failure_of(state)
        status = getattr(exc, "status", None)
        wait = next_wait_of(state)
        log.warning(
            "advoware %s %s failed (%s%s), attempt %d, retrying in %.2fs",
            method,
            endpoint,
            type(exc).__name__,
            f" {status}" if status else "",
            state.attempt_number,
            wait,
        )

    return _log


# -- the token ----------------------------------------------------------------------------------------
def parse_token(data: Mapping[str, Any], renew_before_s: float) -> Token:
    value = data.get("access_token") or data.get("token")
    if not value:
        raise AdvowareAuthError("Advoware token answer carries no access_token", method="POST", endpoint="Token")
    if data.get("expires_in") is not None:
        lifetime = float(data["expires_in"])
    elif data.get("expiration_utc"):
        exp = datetime.fromisoformat(str(data["expiration_utc"]).replace("Z", "+00:00"))
        if exp.tzinfo is None:
            exp = exp.replace(tzinfo=UTC)
        lifetime = (exp - datetime.now(UTC)).total_seconds()
    else:
        lifetime = 3600.0
    return Token.issued(str(value), lifetime, renew_before_s)
