"""Helpers of the calendar-sync tests: the seeded sandbox firm, a SyncContext on the sandboxes, and
what a user would look at (events per calendar, Termine per employee, write counters)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from include.advoware.client import AdvowareClient
from include.calendar_sync.context import SyncContext
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.ratelimit import Backoff, RateLimiter
from include.settings import GoogleSettings, PostgresSettings, Settings, SyncSettings
from sandbox.keys import write_service_account_file
from tests.party_helpers import advoware_settings

SA_EMAIL = "calendar-sync@kanzlei-sandbox.iam.gserviceaccount.com"
SEED = 4711
EMPLOYEES = 3
PER_EMPLOYEE = 12


def seed_firm(
    advoware_url: str, *, employees: int = EMPLOYEES, per_employee: int = PER_EMPLOYEE, start: date | None = None
) -> dict[str, Any]:
    body = {
        "seed": SEED,
        "employees": employees,
        "appointments_per_employee": per_employee,
        "start": (start or date.today()).isoformat(),
    }
    r = httpx.post(f"{advoware_url}/_sandbox/seed", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def key_file(google_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "sa.json"
    if not path.exists():
        write_service_account_file(path, f"{google_url}/token", client_email=SA_EMAIL)
    return path


def google_settings(google_url: str, tmp_path: Path, **kw: Any) -> GoogleSettings:
    return GoogleSettings(
        _env_file=None,
        calendar_service_account_path=str(key_file(google_url, tmp_path)),
        api_endpoint=f"{google_url}/calendar/v3/",
        batch_uri=f"{google_url}/batch/calendar/v3",
        token_uri=f"{google_url}/token",
        **kw,
    )


def settings(
    advoware_url: str,
    google_url: str,
    redis_url: str,
    hub: str,
    tmp_path: Path,
    *,
    write_protection: bool = False,
    **sync: Any,
) -> Settings:
    info = psycopg.conninfo.conninfo_to_dict(hub)
    # These tests follow texts across both ways: the firm's deliberate SYNC_ANONYMIZE=false (the default
    # true is tested in tests/integration/test_privacy.py).
    sync.setdefault("anonymize", False)
    return Settings(
        _env_file=None,
        sandbox_mode=True,
        redis_url=redis_url,
        advoware=advoware_settings(advoware_url, write_protection=write_protection, max_retries=2),
        google=google_settings(google_url, tmp_path),
        postgres=PostgresSettings(
            _env_file=None,
            host=info.get("host", "127.0.0.1"),
            port=int(info.get("port", 5432)),
            db=info["dbname"],
            user=info.get("user", "postgres"),
        ),
        sync=SyncSettings(_env_file=None, **sync),
    )


def make_ctx(
    advoware_url: str,
    google_url: str,
    redis_url: str,
    hub: str,
    tmp_path: Path,
    *,
    write_protection: bool = False,
    google_retries: int = 4,
    **sync: Any,
) -> SyncContext:
    s = settings(advoware_url, google_url, redis_url, hub, tmp_path, write_protection=write_protection, **sync)
    advoware = AdvowareClient(
        s.advoware, redis_client=redis.Redis.from_url(redis_url), backoff_base_s=0.01, backoff_max_s=0.1
    )
    google = GoogleCalendarClient(
        s.google,
        ServiceAccount.from_settings(s.google),
        limiter=RateLimiter.from_url(redis_url, limit=600, window_s=60),
        backoff=Backoff(base_s=0.02, cap_s=0.2, max_retries=google_retries),
        timeout_s=10,
    )
    return SyncContext(hub, advoware, google, s)


# -- what a user looks at -------------------------------------------------------------------------
def advoware_state(advoware_url: str) -> dict[str, Any]:
    return httpx.get(f"{advoware_url}/_sandbox/state", timeout=30).json()


def termine(advoware_url: str, employee: str | None = None) -> list[dict[str, Any]]:
    items = advoware_state(advoware_url)["termine"]
    return [t for t in items if employee is None or t.get("kuerzel") == employee]


def google_state(google_url: str) -> dict[str, Any]:
    return httpx.get(f"{google_url}/_sandbox/state", timeout=30).json()


def calendar_events(google_url: str, calendar_id: str, *, cancelled: bool = False) -> list[dict[str, Any]]:
    cal = next(c for c in google_state(google_url)["calendars"] if c["id"] == calendar_id)
    return [e for e in cal["events"] if cancelled or e.get("status") != "cancelled"]


def stats(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/_sandbox/stats", timeout=10).json()


def total_writes(url: str) -> int:
    return int(stats(url)["total_writes"])


def faults(url: str, *specs: dict[str, Any], clear: bool = True) -> None:
    httpx.post(f"{url}/_sandbox/faults", json={"clear": clear, "faults": list(specs)}, timeout=10).raise_for_status()


def calendar_ids(hub: str) -> dict[str, str]:
    with psycopg.connect(hub) as conn:
        return {
            e: c
            for e, c in conn.execute(
                "SELECT employee, calendar_id FROM employee_calendars WHERE calendar_id IS NOT NULL"
            ).fetchall()
        }


def links(hub: str, employee: str | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(hub, row_factory=psycopg.rows.dict_row) as conn:
        sql = "SELECT * FROM calendar_links" + (" WHERE employee = %s" if employee else "") + " ORDER BY id"
        return list(conn.execute(sql, (employee,) if employee else ()).fetchall())
