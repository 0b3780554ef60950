"""The Redis rate limiter (shared by processes) and the ids, without the Google sandbox."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from include.calendar_engine.ids import event_id
from include.calendar_engine.marker import frnr_of, with_advoware_properties
from include.google_calendar.errors import QuotaExceeded, RetriesExhausted, classify
from include.google_calendar.ratelimit import Backoff, RateLimiter


def test_event_id_is_deterministic_base32hex() -> None:
    a = event_id("AB", 4711)
    assert a == event_id(" ab ", "4711")  # one spelling of the Kürzel, frNr as number
    assert a != event_id("AB", 4712) and a != event_id("CD", 4711)
    assert re.fullmatch(r"[a-v0-9]{52}", a)  # Google: base32hex, 5-1024 characters
    assert set(a) <= set("0123456789abcdefghijklmnopqrstuv")
    body = with_advoware_properties({"summary": "x"}, "ab", 4711)
    assert frnr_of(body) == 4711
    assert body["extendedProperties"]["private"]["syncOrigin"] == "advoware"


def test_budget_is_shared_between_limiters_and_refills_after_the_window(redis_url: str) -> None:
    # Two limiter objects with their own connections stand for two processes.
    a = RateLimiter.from_url(redis_url, limit=5, window_s=1.0)
    b = RateLimiter.from_url(redis_url, limit=5, window_s=1.0)
    grant, wait = a.try_acquire("u1", 3)
    assert grant is not None and grant.n == 3 and wait == 0
    grant, _ = b.try_acquire("u1", 5, minimum=1)
    assert grant is not None and grant.n == 2  # only what is left of the window
    grant, wait = a.try_acquire("u1", 1)
    assert grant is None and 0.5 < wait <= 1.0
    other, _ = b.try_acquire("u2", 5)
    assert other is not None and other.n == 5  # another quota user has its own budget
    start = time.monotonic()
    b.acquire("u1", 4)
    assert 0.5 < time.monotonic() - start < 2.0
    assert a.used("u1") == 4


def test_settled_tokens_count_from_the_answer(redis_url: str) -> None:
    limiter = RateLimiter.from_url(redis_url, limit=2, window_s=1.0)
    slow = limiter.acquire("u", 2)
    time.sleep(0.6)  # the answer took 0.6 s: the server may have counted the calls late
    limiter.settle(slow)
    grant, wait = limiter.try_acquire("u", 1)
    assert grant is None and 0.8 < wait <= 1.0  # one window from the answer, not from the send


def test_no_window_ever_holds_more_than_the_limit(redis_url: str) -> None:
    limiter = RateLimiter.from_url(redis_url, limit=10, window_s=0.5)
    granted = 0
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:
        granted += limiter.acquire_up_to("u", 4).n
        # The window as Redis (server time) sees it right after each grant: a client-side clock would
        # measure when this process got the CPU back, not when the tokens were spent.
        assert limiter.used("u") <= 10
    assert granted >= 30  # and the budget is used: 10 at 0, 0.5, 1.0, 1.5


def test_the_project_window_holds_every_quota_user_together(redis_url: str) -> None:
    """Delegation makes each employee a quota user of their own; Google still counts the project's
    requests together, so many users within their own budget are held back by the project's."""
    a = RateLimiter.from_url(redis_url, limit=4, window_s=1.0, project_limit=6)
    b = RateLimiter.from_url(redis_url, limit=4, window_s=1.0, project_limit=6)  # another process
    first, _ = a.try_acquire("u1", 4)
    assert first is not None and first.n == 4
    second, _ = b.try_acquire("u2", 4, minimum=1)
    assert second is not None and second.n == 2  # u2's own window has 4, the project only 2 left
    third, wait = a.try_acquire("u3", 1)
    assert third is None and 0.5 < wait <= 1.0  # a fresh user waits for the project's window
    assert a.used(None) == 6 and a.used("u2") == 2
    start = time.monotonic()
    assert b.acquire("u3", 3).n == 3  # once the first grants age out
    assert 0.5 < time.monotonic() - start < 2.0
    unlimited = RateLimiter.from_url(redis_url, limit=4, window_s=1.0)  # project_limit 0: users only
    assert unlimited.try_acquire("u4", 4)[0] is not None


def test_the_client_takes_both_budgets_from_its_settings(redis_url: str, tmp_path: Any) -> None:
    from include.google_calendar.client import GoogleCalendarClient
    from tests.calendar_helpers import google_settings

    settings = google_settings("http://127.0.0.1:9", tmp_path, requests_per_window=60, project_requests_per_window=700)
    limiter = GoogleCalendarClient.from_settings(settings, redis_url=redis_url).limiter
    assert limiter is not None and (limiter.limit, limiter.project_limit) == (60, 700)


def test_no_project_window_ever_holds_more_than_the_project_limit(redis_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    limiter = RateLimiter.from_url(redis_url, limit=10, window_s=0.5, project_limit=12)
    seen: list[int] = []

    def user(name: str) -> int:
        granted = 0
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            grant = limiter.acquire_up_to(name, 3)
            granted += grant.n
            seen.append(limiter.used(None))  # right after a grant, by Redis' clock
            limiter.settle(grant)
        return granted

    with ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(user, ["a", "b", "c", "d"]))
    assert max(seen) <= 12
    assert total >= 24  # and the project's budget is used: 12 per 0.5 s (settled from the answer)


def test_backoff_retries_transient_errors_but_never_quota_exceeded() -> None:
    from googleapiclient.errors import HttpError
    from httplib2 import Response

    def err(status: int, reason: str) -> HttpError:
        body = f'{{"error": {{"errors": [{{"reason": "{reason}"}}], "code": {status}}}}}'.encode()
        return HttpError(Response({"status": str(status)}), body)

    assert classify(err(403, "rateLimitExceeded")) == "retry"
    assert classify(err(403, "userRateLimitExceeded")) == "retry"
    assert classify(err(429, "rateLimitExceeded")) == "retry"
    assert classify(err(503, "backendError")) == "retry"
    assert classify(err(403, "quotaExceeded")) == "quota"
    assert classify(err(409, "duplicate")) == "final"
    assert classify(ConnectionResetError()) == "retry"

    sleeps: list[float] = []
    backoff = Backoff(base_s=1.0, cap_s=8.0, max_retries=3, sleep=sleeps.append)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise err(429, "rateLimitExceeded")
        return "ok"

    assert backoff.run(flaky, operation="t", quota_user="u") == "ok"
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    with pytest.raises(RetriesExhausted):
        backoff.run(lambda: (_ for _ in ()).throw(err(500, "backendError")), operation="t", quota_user="u")
    quota_calls = []

    def quota() -> None:
        quota_calls.append(1)
        raise err(403, "quotaExceeded")

    with pytest.raises(QuotaExceeded) as info:
        backoff.run(quota, operation="events.insert", quota_user="sa@x")
    assert len(quota_calls) == 1 and "sa@x" in str(info.value)
