"""Request budget per quota user, shared by every process through Redis, plus the calls' retries.

Google counts requests per user on a *sliding* window (600 per minute). A classic token bucket with
burst capacity B and refill N/W can put B + N requests into one window and get rejected, while
B = 0 wastes the budget; so the bucket here refills each token exactly one window after it was
spent (a sliding-window log, Lua scripts, atomic across processes). Any window then holds at
most N of our requests, and a burst may use the whole budget at once, which is what lets a batch
writer reach the quota floor.

A token is stamped when taken and stamped again when the answer is in (`settle`): the server
counted the request somewhere in between, so holding the token one window past the answer can
never put more than N requests into the server's window, however slow the server or the network.

Google also counts every request of the project (10,000 per minute): with delegation each employee
is a quota user of its own, so 1,000 employees could send far more than that while each stays
within its 600. A limiter with a `project_limit` therefore takes every token from two windows in
one script: the quota user's and the project's; a request goes out only when both have room.

Retries (`Backoff`) are the shared policy of `include.retry`, with Google's classification of
failures (`include.google_calendar.errors.classify`).

Keys: `gcal:ratelimit:<quota user>` (sorted set of spent tokens scored by Redis server time, in
microseconds) and `gcal:ratelimit:<quota user>:seq` (counter naming the tokens); the project's
window `gcal:project-ratelimit` and `gcal:project-ratelimit:seq`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Lock
from typing import Required, TypedDict, TypeVar, Unpack

import redis

from include.google_calendar.errors import (
    QuotaExceeded,
    RetriesExhausted,
    classify,
    describe,
)
from include.retry import RetryPolicy, RetryState, failure_of, next_wait_of

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "gcal:ratelimit:"
PROJECT_KEY = "gcal:project-ratelimit"

# KEYS[1] sorted set of the user's spent tokens, KEYS[2] a counter naming them; KEYS[3], KEYS[4] the
# same of the project. ARGV: limit, window (microseconds), wanted, minimum, project limit (0: no
# project window). Returns {granted, wait_us, last user token, last project token}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local min_want = tonumber(ARGV[4])
local plimit = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local free = limit - redis.call('ZCARD', KEYS[1])
local pfree = free
if plimit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  pfree = plimit - redis.call('ZCARD', KEYS[3])
end
if free >= min_want and pfree >= min_want then
  local grant = math.min(free, pfree, want)
  local ttl = math.floor(window / 1000) + 1000
  local last = redis.call('INCRBY', KEYS[2], grant)
  for i = 1, grant do
    redis.call('ZADD', KEYS[1], now, last - grant + i)
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  local plast = 0
  if plimit > 0 then
    plast = redis.call('INCRBY', KEYS[4], grant)
    for i = 1, grant do
      redis.call('ZADD', KEYS[3], now, plast - grant + i)
    end
    redis.call('PEXPIRE', KEYS[3], ttl)
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
  return {grant, 0, last, plast}
end
local wait = 0
if free < min_want then
  local oldest = redis.call('ZRANGE', KEYS[1], min_want - free - 1, min_want - free - 1, 'WITHSCORES')
  wait = tonumber(oldest[2]) + window - now
end
if plimit > 0 and pfree < min_want then
  local oldest = redis.call('ZRANGE', KEYS[3], min_want - pfree - 1, min_want - pfree - 1, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + window - now)
end
return {0, wait, 0, 0}
"""

# KEYS[1] the user's sorted set, KEYS[2] the project's; ARGV: last user token, count, window (us),
# last project token (0: none). Re-stamps the tokens to now (never earlier).
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local ttl = math.floor(tonumber(ARGV[3]) / 1000) + 1000
local plast = tonumber(ARGV[4])
for i = 1, n do
  redis.call('ZADD', KEYS[1], 'GT', now, last - n + i)
end
redis.call('PEXPIRE', KEYS[1], ttl)
if plast > 0 then
  for i = 1, n do
    redis.call('ZADD', KEYS[2], 'GT', now, plast - n + i)
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return n
"""


@dataclass(frozen=True)
class Grant:
    """Tokens taken for `n` requests of `user`; hand back to `RateLimiter.settle` when answered."""

    user: str
    n: int
    last: int = 0
    project_last: int = 0  # the project window's tokens (0: no project window)


class LimiterOptions(TypedDict, total=False):
    """The keywords of `RateLimiter`, for `RateLimiter.from_url` to pass on."""

    limit: Required[int]
    window_s: Required[float]
    margin_s: float
    prefix: str
    project_limit: int
    project_key: str


class RateLimiter:
    """`acquire(user, n)` blocks until n requests of `user` fit; `acquire_up_to` grants what fits.
    With `project_limit` (> 0) every request also needs room in the project's window."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        limit: int,
        window_s: float,
        margin_s: float = 0.0,
        prefix: str = KEY_PREFIX,
        project_limit: int = 0,
        project_key: str = PROJECT_KEY,
    ) -> None:
        if limit < 1 or window_s <= 0 or project_limit < 0:
            raise ValueError("limit must be >= 1, window_s > 0 and project_limit >= 0")
        self.redis = client
        self.limit = limit
        self.project_limit = project_limit
        self._project_keys = [project_key, f"{project_key}:seq"]
        self.window_s = window_s
        # A little slack for clock and network skew between our Redis and the server's counter.
        self._window_us = int((window_s + margin_s) * 1_000_000)
        self.prefix = prefix
        self._script = client.register_script(_ACQUIRE)
        self._settle = client.register_script(_SETTLE)
        self.waited_s = 0.0
        self._lock = Lock()

    @classmethod
    def from_url(cls, url: str, **options: Unpack[LimiterOptions]) -> RateLimiter:
        """A limiter on its own connection to the Redis at `url`."""
        return cls(redis.Redis.from_url(url), **options)

    def _key(self, user: str) -> list[str]:
        return [f"{self.prefix}{user}", f"{self.prefix}{user}:seq"]

    def try_acquire(self, user: str, want: int, minimum: int | None = None) -> tuple[Grant | None, float]:
        """(grant, 0) with minimum <= grant.n <= want, or (None, seconds to wait before asking again)."""
        ceiling = min(self.limit, self.project_limit) if self.project_limit else self.limit
        want = max(1, min(want, ceiling))
        minimum = max(1, min(minimum if minimum is not None else want, want))
        granted, wait_us, last, project_last = self._script(
            keys=self._key(user) + self._project_keys,
            args=[self.limit, self._window_us, want, minimum, self.project_limit],
        )
        if int(granted):
            return Grant(user, int(granted), int(last), int(project_last)), 0.0
        return None, max(0.0, int(wait_us) / 1_000_000)

    def settle(self, grant: Grant | None) -> None:
        """The requests of `grant` were answered: their tokens count from now for one window."""
        if grant is not None and grant.n:
            self._settle(
                keys=[self._key(grant.user)[0], self._project_keys[0]],
                args=[grant.last, grant.n, self._window_us, grant.project_last],
            )

    def acquire_up_to(self, user: str, want: int, minimum: int = 1, *, timeout_s: float = 3600) -> Grant:
        """Block until at least `minimum` requests fit, then take as many as fit up to `want`."""
        deadline = time.monotonic() + timeout_s
        while True:
            grant, wait = self.try_acquire(user, want, minimum)
            if grant is not None:
                return grant
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"rate limiter: no budget for {user} within {timeout_s}s")
            # A tiny jitter so processes waiting on the same user don't ask in lock-step.
            pause = wait + random.uniform(0, 0.005)
            with self._lock:
                self.waited_s += pause
            time.sleep(pause)

    def acquire(self, user: str, n: int = 1, *, timeout_s: float = 3600) -> Grant:
        return self.acquire_up_to(user, n, n, timeout_s=timeout_s)

    def used(self, user: str | None) -> int:
        """Requests of `user` (None: of the project) inside the current window (tests, diagnostics)."""
        now = self.redis.time()
        now_us = now[0] * 1_000_000 + now[1]
        key = self._project_keys[0] if user is None else self._key(user)[0]
        return int(self.redis.zcount(key, now_us - self._window_us, "+inf"))


def _retryable(exc: BaseException) -> bool:
    return classify(exc) == "retry"


@dataclass
class Backoff:
    """The Google calls' retry policy (include/retry.py): the k-th wait (k from 0) is d/2 + uniform(0,
    d/2), d = min(cap, base*2^k); a rate limit, 5xx or lost connection is retried `max_retries` times.

    Half of each wait is fixed so a series of retries surely outlasts a short rate-limit window;
    a server's Retry-After is a lower bound (capped at `cap_s`).
    """

    base_s: float = 1.0
    cap_s: float = 32.0
    max_retries: int = 8
    sleep: Callable[[float], None] = time.sleep
    retries: int = field(default=0, init=False)  # all retries done through this policy
    _lock: Lock = field(default_factory=Lock, init=False, repr=False)

    @property
    def policy(self) -> RetryPolicy:
        """The shared policy with this backoff's numbers (read at each call: tests change them)."""
        return RetryPolicy(
            attempts=max(self.max_retries, 0) + 1,
            base_s=self.base_s,
            max_s=self.cap_s,
            jitter=(0.5, 1.0),
            retryable=_retryable,
            sleep=self.sleep,
        )

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """The wait after retry number `attempt` (from 0) that failed with `exc`."""
        return self.policy.delay(attempt + 1, exc)

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def run(
        self, fn: Callable[[], T], *, operation: str, quota_user: str, before_attempt: Callable[[], None] | None = None
    ) -> T:
        """Call fn until it succeeds or fails finally. quotaExceeded is never retried."""
        policy = self.policy

        def attempt() -> T:
            if before_attempt is not None:
                before_attempt()
            return fn()

        def before_sleep(state: RetryState) -> None:
            exc = failure_of(state)
            log.info(
                "google %s: %s, retry %d in %.2fs",
                operation,
                describe(exc) if exc else "",
                state.attempt_number,
                next_wait_of(state),
            )
            self.count_retry()

        try:
            return policy.call(attempt, before_sleep=before_sleep)
        except Exception as exc:  # classified below; anything unknown is re-raised as is
            verdict = classify(exc)
            if verdict == "quota":
                raise QuotaExceeded(quota_user, operation, describe(exc)) from exc
            if verdict == "retry":  # retryable, so it failed every attempt
                raise RetriesExhausted(operation, policy.attempts, exc) from exc
            raise
