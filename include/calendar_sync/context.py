"""What every step needs: the hub DSN, an Advoware client, a Google Calendar client, the settings.

The DAG builds it from Airflow connections (hooks); the CLI, the demo and the tests from settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from include.advoware.client import AdvowareClient
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.service import CalendarSession
from include.hub import calendars as hub_calendars
from include.hub.db import connect
from include.settings import Settings, get_settings


class SyncStopped(RuntimeError):
    """A safety stop (empty listing, too many deletions): loud, nothing was written."""


class PhaseFailed(RuntimeError):
    """Some items of a phase failed (each recorded in the hub); raised at the end so the task retries."""


@dataclass
class SyncContext:
    hub_dsn: str
    advoware: AdvowareClient
    google: GoogleCalendarClient
    settings: Settings = field(default_factory=get_settings)
    today: date | None = None  # fixed in tests; None = today

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kw: Any) -> SyncContext:
        settings = settings or get_settings()
        advoware = AdvowareClient(settings.advoware, redis_url=settings.redis_url)
        google = GoogleCalendarClient.from_settings(settings.google, redis_url=settings.redis_url)
        return cls(settings.postgres.dsn(), advoware, google, settings, **kw)

    @property
    def write_protection(self) -> bool:
        return bool(self.advoware.settings.write_protection)

    def calendar(self, employee: str) -> tuple[CalendarSession, str]:
        """The session acting for the employee and their calendar id (provisioned by prepare)."""
        with connect(self.hub_dsn) as conn:
            row = hub_calendars.get(conn, employee)
        if row is None or not row.calendar_id:
            raise LookupError(f"employee {employee} has no provisioned calendar")
        return self.google.session_for(row.email), row.calendar_id

    def close(self) -> None:
        self.advoware.close()
