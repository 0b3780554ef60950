"""The one retry policy of every HTTP client, on tenacity, and the one Retry-After parser.

Every client (Advoware sync and async, EspoCRM, Google Calendar, the Airflow API sync and async)
repeats a failed call with a `RetryPolicy`: at most `attempts` attempts; after the n-th failed one
it waits

    step = min(max_s, base_s * 2**(n-1))
    wait = min(max_s, step * uniform(*jitter))

and, when the server sent a Retry-After, at least that long (a lower bound, itself capped by
`max_s`), so every wait lies in [0, max_s]. `retryable` names the failures worth repeating; any
other is raised at once, and after the last attempt the last failure is raised as it is.

The same policy runs synchronously (`tenacity.Retrying`, `time.sleep`) and asynchronously
(`tenacity.AsyncRetrying`, `asyncio.sleep`: an event loop never blocks on a retry, the gateway's
thread pool never holds a sleeping thread). Both sleeps can be injected (tests need no real waiting).

Retry-After is read here and nowhere else (`retry_after_of`): delay-seconds or an HTTP-date, from an
httpx or aiohttp response, a headers mapping, or a google-api-client HttpError (its `resp`).
How these per-call retries stack with the item attempts and Airflow's task retries: docs/retries.md.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.retry import retry_base
from tenacity.stop import stop_base

__all__ = [
    "RetryPolicy",
    "RetryState",
    "failure_of",
    "next_wait_of",
    "parse_retry_after",
    "retry_after_hint",
    "retry_after_of",
]

T = TypeVar("T")
RetryState = RetryCallState  # what a `before_sleep` callback receives (clients need not import tenacity)
BeforeSleep = Callable[[RetryCallState], None]


class _RetryingArgs(TypedDict):
    """What `Retrying` and `AsyncRetrying` share; only the sleep differs."""

    stop: stop_base
    wait: Callable[[RetryCallState], float]
    retry: retry_base
    reraise: bool
    before_sleep: BeforeSleep | None


_HEADER = "retry-after"
_MAX_EXPONENT = 64  # 2**64 steps are far past any cap; keeps the float arithmetic finite


# -- Retry-After ----------------------------------------------------------------------------------
def parse_retry_after(value: str | bytes | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds ("120", "1.5") or an HTTP-date
    ("Wed, 21 Oct 2015 07:28:00 GMT", counted from `now`). A date in the past gives 0; a missing,
    empty or unreadable value (or a negative or non-finite number) gives None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000": UTC without a stated zone
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(delta, 0.0)


def _header(headers: Any) -> Any:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for key in (_HEADER, "Retry-After"):  # case-insensitive containers answer the first already
        found = get(key)
        if found is not None:
            return found
    if isinstance(headers, Mapping):  # a plain dict with another spelling
        for key, found in headers.items():
            if isinstance(key, str) and key.lower() == _HEADER:
                return found
    return None


def retry_after_of(source: Any, *, now: datetime | None = None) -> float | None:
    """The Retry-After of an answer, in seconds, or None.

    `source`: an httpx.Response (or anything with `headers`, e.g. the async Advoware client's
    RawResponse), a headers mapping (httplib2's response included), or a google-api-client HttpError
    (its `resp`; the google client itself ignores the header)."""
    if source is None:
        return None
    if not isinstance(source, Mapping) and hasattr(source, "resp"):  # googleapiclient HttpError
        source = source.resp
    headers = source if isinstance(source, Mapping) else getattr(source, "headers", None)
    return parse_retry_after(_header(headers), now=now)


def retry_after_hint(exc: BaseException | None) -> float | None:
    """The server's Retry-After carried by a failure: a typed error's `retry_after` (seconds, read
    from the answer when the error was made), else the header of its `response` / `resp`."""
    if exc is None:
        return None
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) and value >= 0 else None
    for attr in ("response", "resp"):
        answer = getattr(exc, attr, None)
        if answer is not None:
            return retry_after_of(answer)
    return None


# -- tenacity callback helpers --------------------------------------------------------------------
def failure_of(state: RetryCallState) -> BaseException | None:
    """The exception of the attempt that just failed."""
    return state.outcome.exception() if state.outcome else None


def next_wait_of(state: RetryCallState) -> float:
    """Seconds until the next attempt (in a `before_sleep` callback)."""
    return state.next_action.sleep if state.next_action else 0.0


def _never(_: BaseException) -> bool:
    return False


# -- the policy -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How a client repeats a failed call. Immutable; `replace` derives a variant."""

    attempts: int = 5  # attempts in all, the first one included (1 = no retry)
    base_s: float = 0.25  # the first step of the exponential backoff
    max_s: float = 30.0  # no wait is longer, a server's Retry-After included
    jitter: tuple[float, float] = (1.0, 2.0)  # each wait is its step times uniform(lo, hi)
    retryable: Callable[[BaseException], bool] = _never
    retry_after: Callable[[BaseException | None], float | None] = retry_after_hint
    sleep: Callable[[float], None] | None = None  # None: time.sleep (tenacity's default)
    async_sleep: Callable[[float], Awaitable[None]] | None = None  # None: asyncio.sleep

    def __post_init__(self) -> None:
        lo, hi = self.jitter
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1 (the first attempt counts)")
        if self.base_s < 0 or self.max_s < 0:
            raise ValueError("base_s and max_s must be >= 0")
        if not 0 <= lo <= hi:
            raise ValueError("jitter must be (lo, hi) with 0 <= lo <= hi")

    def replace(self, **changes: Any) -> RetryPolicy:
        return dataclasses.replace(self, **changes)

    # -- waits ----------------------------------------------------------------------------------
    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based) without a Retry-After."""
        step = min(self.max_s, self.base_s * 2.0 ** min(max(attempt - 1, 0), _MAX_EXPONENT))
        return min(self.max_s, step * random.uniform(*self.jitter))

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """The wait after failed attempt `attempt` that failed with `exc`: the backoff, at least the
        server's Retry-After, never more than `max_s`."""
        wait = self.backoff(attempt)
        after = self.retry_after(exc) if exc is not None else None
        if after is not None:
            wait = max(wait, min(after, self.max_s))
        return wait

    def wait(self, state: RetryCallState) -> float:
        """tenacity's `wait` callback."""
        return self.delay(state.attempt_number, failure_of(state))

    # -- running --------------------------------------------------------------------------------
    def _kwargs(self, before_sleep: BeforeSleep | None) -> _RetryingArgs:
        return {
            "stop": stop_after_attempt(self.attempts),
            "wait": self.wait,
            "retry": retry_if_exception(self.retryable),
            "reraise": True,  # the last failure itself, never tenacity's RetryError
            "before_sleep": before_sleep,
        }

    def retrying(self, *, before_sleep: BeforeSleep | None = None) -> Retrying:
        """A `tenacity.Retrying` (call it with the function, or iterate it) for synchronous code."""
        if self.sleep is None:  # tenacity's own default: time.sleep
            return Retrying(**self._kwargs(before_sleep))
        return Retrying(**self._kwargs(before_sleep), sleep=self.sleep)

    def async_retrying(self, *, before_sleep: BeforeSleep | None = None) -> AsyncRetrying:
        """A `tenacity.AsyncRetrying` whose waits are `asyncio.sleep` (or the injected `async_sleep`)."""
        if self.async_sleep is None:  # tenacity's own default: asyncio.sleep
            return AsyncRetrying(**self._kwargs(before_sleep))
        return AsyncRetrying(**self._kwargs(before_sleep), sleep=self.async_sleep)

    def call(self, fn: Callable[[], T], *, before_sleep: BeforeSleep | None = None) -> T:
        """`fn()` until it succeeds, fails for good or the attempts are spent."""
        return self.retrying(before_sleep=before_sleep)(fn)

    async def acall(self, fn: Callable[[], Awaitable[T]], *, before_sleep: BeforeSleep | None = None) -> T:
        """`await fn()` likewise, waiting with asyncio."""
        return await self.async_retrying(before_sleep=before_sleep)(fn)
