"""The one retry policy (include/retry.py): Retry-After parsing, waits, stopping, sync and async.

No test here sleeps for real except the one that shows the event loop stays responsive (0.15 s):
the sleeps are injected.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta

import httplib2
import httpx
import pytest
from googleapiclient.errors import HttpError
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from include.retry import (
    RetryPolicy,
    failure_of,
    next_wait_of,
    parse_retry_after,
    retry_after_hint,
    retry_after_of,
)

NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)


class Flaky(Exception):
    """A retryable failure; `retry_after` as a typed client error carries it."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after


class Fatal(Exception):
    pass


def is_flaky(exc: BaseException) -> bool:
    return isinstance(exc, Flaky)


def failing(times: int, exc: BaseException | None = None):
    """A function failing `times` times, then answering "ok"; `calls` counts."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc if exc is not None else Flaky()
        return "ok"

    return fn, calls


# -- Retry-After ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("1.5", 1.5), (b"3", 3.0)])
def test_retry_after_in_seconds(value: str | bytes, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:28:00 GMT",  # IMF-fixdate, the preferred form
        "Wednesday, 21-Oct-15 07:28:00 GMT",  # RFC 850
        "Wed Oct 21 07:28:00 2015",  # asctime (no zone: UTC)
    ],
)
def test_retry_after_as_http_date(value: str) -> None:
    assert parse_retry_after(value, now=NOW) == 30.0


def test_retry_after_date_in_the_past_is_zero_and_now_defaults_to_the_clock() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW + timedelta(hours=1)) == 0.0
    soon = (datetime.now(UTC) + timedelta(seconds=100)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 95 <= parse_retry_after(soon) <= 100  # type: ignore[operator]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",
        "nan",
        "inf",
        "-inf",
        "1e999",
        "Wed, 99 Foo 2015 07:28:00 GMT",
        "12 seconds",
        "0x10",
    ],
)
def test_garbage_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


@given(st.one_of(st.text(max_size=40), st.binary(max_size=40)))
def test_the_parser_never_raises_and_gives_none_or_a_finite_non_negative_number(value: str | bytes) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


def test_retry_after_is_read_from_every_kind_of_answer() -> None:
    assert retry_after_of(httpx.Response(503, headers={"Retry-After": "3"})) == 3.0
    assert retry_after_of(httpx.Response(503)) is None
    assert retry_after_of(CIMultiDictProxy(CIMultiDict({"Retry-After": "4"}))) == 4.0  # aiohttp's headers
    for headers in ({"Retry-After": "5"}, {"retry-after": "5"}, {"RETRY-AFTER": "5"}):
        assert retry_after_of(headers) == 5.0
    resp = httplib2.Response({"status": "429", "Retry-After": "6"})  # httplib2 lower-cases the keys
    assert retry_after_of(resp) == 6.0
    assert retry_after_of(HttpError(resp, b"{}")) == 6.0  # google-api-client: its `resp`
    assert retry_after_of(HttpError(httplib2.Response({"status": "500"}), b"{}")) is None
    assert retry_after_of({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=NOW) == 30.0
    assert retry_after_of(None) is None and retry_after_of({}) is None


def test_retry_after_hint_of_a_failure() -> None:
    assert retry_after_hint(Flaky(retry_after=2.5)) == 2.5  # a typed client error, parsed already
    assert retry_after_hint(Flaky()) is None
    status_error = httpx.HTTPStatusError(
        "503", request=httpx.Request("GET", "http://x"), response=httpx.Response(503, headers={"Retry-After": "9"})
    )
    assert retry_after_hint(status_error) == 9.0
    assert retry_after_hint(HttpError(httplib2.Response({"status": "503", "retry-after": "8"}), b"")) == 8.0
    assert retry_after_hint(ConnectionResetError()) is None and retry_after_hint(None) is None


# -- waits --------------------------------------------------------------------------------------
def test_waits_grow_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(base_s=0.25, max_s=1.5, jitter=(1.0, 1.0))
    assert [policy.delay(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 1.5, 1.5, 1.5]
    spread = RetryPolicy(base_s=1.0, max_s=8.0, jitter=(0.5, 1.0))
    for n, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        assert step / 2 <= spread.delay(n) <= step  # jitter stays at the cap


def test_retry_after_is_a_lower_bound_capped_by_the_maximum() -> None:
    policy = RetryPolicy(base_s=0.01, max_s=30.0, jitter=(1.0, 1.0))
    assert policy.delay(1, Flaky(retry_after=5)) == 5.0  # longer than the backoff: honoured
    assert policy.delay(1, Flaky(retry_after=3600)) == 30.0  # capped
    assert policy.delay(12, Flaky(retry_after=0.5)) == 20.48  # shorter than the backoff: the backoff
    assert policy.delay(1, Flaky(retry_after=0)) == 0.01
    assert policy.delay(1, Flaky()) == 0.01


@settings(max_examples=300)
@given(
    base=st.floats(0, 1e6, allow_nan=False),
    max_s=st.floats(0, 1e6, allow_nan=False),
    lo=st.floats(0, 4),
    extra=st.floats(0, 4),
    attempt=st.integers(1, 10_000),
    after=st.one_of(st.none(), st.floats(0, 1e12, allow_nan=False)),
)
def test_every_wait_lies_within_zero_and_the_maximum(
    base: float, max_s: float, lo: float, extra: float, attempt: int, after: float | None
) -> None:
    policy = RetryPolicy(base_s=base, max_s=max_s, jitter=(lo, lo + extra))
    wait = policy.delay(attempt, Flaky(retry_after=after))
    assert 0 <= wait <= max_s
    if after is not None:
        assert wait >= min(after, max_s)


def test_a_policy_refuses_nonsense() -> None:
    for bad in ({"attempts": 0}, {"base_s": -1}, {"max_s": -1}, {"jitter": (2.0, 1.0)}, {"jitter": (-1.0, 1.0)}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


# -- running (sync) -----------------------------------------------------------------------------
def test_retries_until_success_with_the_injected_sleep() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, base_s=1.0, max_s=8.0, jitter=(1.0, 1.0), retryable=is_flaky, sleep=sleeps.append)
    fn, calls = failing(2)
    started = time.monotonic()
    assert policy.call(fn) == "ok"
    assert len(calls) == 3 and sleeps == [1.0, 2.0]
    assert time.monotonic() - started < 0.5  # nothing slept for real


@given(attempts=st.integers(1, 12))
def test_stops_after_n_attempts_and_raises_the_last_failure_itself(attempts: int) -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=attempts, base_s=0.5, max_s=4.0, retryable=is_flaky, sleep=sleeps.append)
    fn, calls = failing(10**6)
    with pytest.raises(Flaky):  # not tenacity's RetryError
        policy.call(fn)
    assert len(calls) == attempts and len(sleeps) == attempts - 1
    assert all(0 <= s <= 4.0 for s in sleeps)


def test_a_non_retryable_failure_is_raised_at_once() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, retryable=is_flaky, sleep=sleeps.append)
    fn, calls = failing(1, Fatal("no"))
    with pytest.raises(Fatal):
        policy.call(fn)
    assert len(calls) == 1 and sleeps == []
    assert RetryPolicy(attempts=5, sleep=sleeps.append).retryable(Flaky()) is False  # default: nothing


def test_the_server_retry_after_decides_the_sleep() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(
        attempts=3, base_s=0.01, max_s=10.0, jitter=(1.0, 1.0), retryable=is_flaky, sleep=sleeps.append
    )
    fn, _ = failing(2, Flaky(retry_after=7))
    assert policy.call(fn) == "ok" and sleeps == [7.0, 7.0]


def test_before_sleep_sees_the_failure_the_attempt_and_the_wait() -> None:
    seen: list[tuple[str, int, float]] = []
    policy = RetryPolicy(
        attempts=3, base_s=2.0, max_s=10.0, jitter=(1.0, 1.0), retryable=is_flaky, sleep=lambda s: None
    )
    fn, _ = failing(2)
    policy.call(
        fn, before_sleep=lambda st: seen.append((type(failure_of(st)).__name__, st.attempt_number, next_wait_of(st)))
    )
    assert seen == [("Flaky", 1, 2.0), ("Flaky", 2, 4.0)]


def test_the_retrying_object_can_be_iterated_to_count_attempts() -> None:
    policy = RetryPolicy(attempts=3, base_s=0, retryable=is_flaky, sleep=lambda s: None)
    fn, _ = failing(1)
    numbers = []
    for attempt in policy.retrying():
        with attempt:
            numbers.append(attempt.retry_state.attempt_number)
            fn()
    assert numbers == [1, 2]


def test_replace_derives_a_variant() -> None:
    policy = RetryPolicy(attempts=3)
    assert policy.replace(attempts=1).attempts == 1 and policy.attempts == 3


# -- running (async) ----------------------------------------------------------------------------
def test_async_retries_with_the_injected_async_sleep_and_never_time_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    def blocking(_: float) -> None:
        raise AssertionError("time.sleep in the async path")

    monkeypatch.setattr(time, "sleep", blocking)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = RetryPolicy(
        attempts=4, base_s=1.0, max_s=8.0, jitter=(1.0, 1.0), retryable=is_flaky, async_sleep=fake_sleep
    )
    fn, calls = failing(2)

    async def attempt() -> str:
        return fn()

    assert asyncio.run(policy.acall(attempt)) == "ok"
    assert len(calls) == 3 and sleeps == [1.0, 2.0]
    fn, calls = failing(10)
    with pytest.raises(Flaky):
        asyncio.run(policy.acall(attempt))
    assert len(calls) == 4
    fn, calls = failing(1, Fatal("no"))
    with pytest.raises(Fatal):
        asyncio.run(policy.acall(attempt))
    assert len(calls) == 1


def test_async_waits_leave_the_event_loop_responsive(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the default asyncio.sleep: other tasks run while a call waits for its next attempt."""
    monkeypatch.setattr(time, "sleep", lambda s: (_ for _ in ()).throw(AssertionError("blocking sleep")))
    policy = RetryPolicy(attempts=3, base_s=0.05, max_s=1.0, jitter=(1.0, 1.0), retryable=is_flaky)
    fn, calls = failing(2)

    async def attempt() -> str:
        return fn()

    async def main() -> tuple[str, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        result = await policy.acall(attempt)  # waits 0.05 + 0.1 s
        stop.set()
        await task
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result == "ok" and len(calls) == 3
    assert ticks >= 10  # the loop kept running other tasks during the 0.15 s of waits


def test_a_deadline_cuts_an_async_wait_short() -> None:
    """What the gateway relies on: asyncio.timeout around the retries ends a long wait at once."""
    policy = RetryPolicy(attempts=5, base_s=10.0, max_s=30.0, retryable=is_flaky)
    fn, calls = failing(10)

    async def attempt() -> str:
        return fn()

    async def main() -> None:
        async with asyncio.timeout(0.1):
            await policy.acall(attempt)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert time.monotonic() - started < 2 and len(calls) == 1
