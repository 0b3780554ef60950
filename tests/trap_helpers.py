"""Helpers of the scenario tests of the classic sync traps (tests/integration/test_trap_*.py): one employee with
explicit appointments in the Advoware sandbox, a person acting in Google as that employee (the
calendar is shared with them as writer), and what a user would look at afterwards."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import google_auth_httplib2
import httplib2
import httpx
import redis

from include.advoware.client import AdvowareClient
from include.calendar_sync.context import SyncContext
from include.calendar_sync.runner import sync_all
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.ratelimit import Backoff, RateLimiter
from include.google_calendar.service import build_service
from tests.calendar_helpers import google_settings, make_ctx, settings, total_writes

EMPLOYEE = "TR"
EMAIL = "tr@kanzlei.example"


def advoware_termin(text: str, start: datetime, end: datetime, **extra: Any) -> dict[str, Any]:
    """An appointment as Advoware holds it (local Berlin wall times without offset)."""
    return {
        "text": text,
        "notiz": "",
        "ort": "",
        "kuerzel": EMPLOYEE,
        "anwalt": EMPLOYEE,
        "datum": start.strftime("%Y-%m-%dT%H:%M:%S"),
        "uhrzeitVon": start.strftime("%H:%M:%S"),
        "datumBis": end.strftime("%Y-%m-%dT%H:%M:%S"),
        "uhrzeitBis": end.strftime("%H:%M:%S"),
        "abwesenheit": 0,
        "privat": 0,
        **extra,
    }


def all_day_termin(text: str, first: date, last: date) -> dict[str, Any]:
    return {
        "text": text,
        "notiz": "",
        "ort": "",
        "kuerzel": EMPLOYEE,
        "anwalt": EMPLOYEE,
        "datum": f"{first}T00:00:00",
        "uhrzeitVon": "00:00:00",
        "datumBis": f"{last}T23:59:00",
        "uhrzeitBis": "23:59:00",
        "abwesenheit": 1,
        "privat": 0,
    }


def seed_employee(advoware_url: str, termine: list[dict[str, Any]]) -> None:
    body = {
        "mitarbeiter": [{"kuerzel": EMPLOYEE, "vorname": "Tina", "name": "Rat", "email": EMAIL, "aktiv": True}],
        "termine": termine,
    }
    httpx.post(f"{advoware_url}/_sandbox/seed", json=body, timeout=30).raise_for_status()


def trap_ctx(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path, today: date | None = None, **kw: Any
) -> SyncContext:
    ctx = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path, **kw)
    ctx.today = today
    return ctx


def delegated_ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> SyncContext:
    """Domain-wide delegation: the sync acts as each employee, whose own account holds the calendar."""
    s = settings(advoware_url, google_url, redis_url, hub, tmp_path)
    s = s.model_copy(update={"google": google_settings(google_url, tmp_path, delegation=True)})
    advoware = AdvowareClient(
        s.advoware, redis_client=redis.Redis.from_url(redis_url), backoff_base_s=0.01, backoff_max_s=0.1
    )
    google = GoogleCalendarClient(
        s.google,
        ServiceAccount.from_settings(s.google),
        limiter=RateLimiter.from_url(redis_url, limit=600, window_s=60),
        backoff=Backoff(base_s=0.02, cap_s=0.2, max_retries=4),
        timeout_s=10,
    )
    return SyncContext(hub, advoware, google, s)


def person(ctx: SyncContext) -> Any:
    """The employee's own Google client (Google Calendar as they use it), not the sync's."""
    http = google_auth_httplib2.AuthorizedHttp(ctx.google.account.credentials(EMAIL), http=httplib2.Http(timeout=10))
    return build_service(http, ctx.settings.google)


def sync(ctx: SyncContext) -> dict[str, Any]:
    _, results = sync_all(ctx, employees=[EMPLOYEE])
    return results[EMPLOYEE]


def quiet(ctx: SyncContext, advoware_url: str, google_url: str) -> bool:
    """A run after the change was carried writes nothing to either side."""
    before = (total_writes(advoware_url), total_writes(google_url))
    result = sync(ctx)
    return result["status"] == "success" and (total_writes(advoware_url), total_writes(google_url)) == before


def mails(google_url: str) -> int:
    return int(httpx.get(f"{google_url}/_sandbox/mails", timeout=10).json()["count"])


def days(n: int) -> timedelta:
    return timedelta(days=n)
