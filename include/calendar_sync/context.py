"""What every step needs: the hub DSN, an Advoware client, a Google Calendar client, the settings.

The DAG builds it from Airflow connections (hooks); the CLI, the demo and the tests from settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any

from include.advoware.client import AdvowareClient
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.service import CalendarSession
from include.hub import calendars as hub_calendars
from include.hub.db import Hub
from include.settings import Settings, get_settings


class SyncStopped(RuntimeError):
    """A safety stop (empty listing, too many deletions): loud, nothing was written."""


class PhaseFailed(RuntimeError):
    """Some items of a phase failed (each recorded in the hub); raised at the end so the task retries."""


class UnitPhaseFailed(PhaseFailed):
    """Employees of a unit failed this phase (each recorded in its run row); raised once the unit's
    other employees are done, so the task's retry redoes only these. `failures`: employee -> reason
    (ids only); `stopped`: those of them stopped for safety."""

    def __init__(self, message: str, failures: dict[str, str], stopped: set[str]) -> None:
        super().__init__(message)
        self.failures = failures
        self.stopped = stopped


class UnitIncomplete(RuntimeError):
    """The last phase found employees of its unit that failed in an earlier phase: the unit is not
    synced in this run (fails without a retry: retrying the last phase cannot help them)."""


class NothingToDo(RuntimeError):
    """Every employee of the unit failed in an earlier phase: this phase has nobody to work for."""


class SyncContext:
    """Clients given directly, or (`lazy`) as factories built on first use: a task whose phase has
    nothing to do then builds neither client (no token, no TLS context, no connection)."""

    def __init__(
        self,
        hub_dsn: str,
        advoware: AdvowareClient | None,
        google: GoogleCalendarClient | None,
        settings: Settings | None = None,
        today: date | None = None,
    ) -> None:
        self.hub_dsn = hub_dsn
        self.hub = Hub(hub_dsn)  # the task's unit of work: one connection per thread, reused
        self.settings = settings or get_settings()
        self.today = today  # fixed in tests; None = today
        # where an incident found while syncing goes (an include.alerts.Alert): the DAG's tasks mail it
        # (include/airflow_provider/tasks/calendar_sync.py); elsewhere it is only logged
        self.notify: Callable[[Any], Any] | None = None
        # a Google watch channel that cannot be opened or renewed, and one that opens again
        # (include/calendar_push; the DAG's tasks alert once per incident, elsewhere only logged)
        self.on_channel_failure: Callable[[str, str | None, str], None] | None = None
        self.on_channel_recovered: Callable[[str], None] | None = None
        self._clients: dict[str, Any] = {"advoware": advoware, "google": google}
        self._factories: dict[str, Callable[[], Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def lazy(
        cls,
        hub_dsn: str,
        advoware: Callable[[], AdvowareClient],
        google: Callable[[], GoogleCalendarClient],
        settings: Settings | None = None,
        **kw: Any,
    ) -> SyncContext:
        ctx = cls(hub_dsn, None, None, settings, **kw)
        ctx._factories = {"advoware": advoware, "google": google}
        return ctx

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kw: Any) -> SyncContext:
        s = settings or get_settings()
        return cls.lazy(
            s.postgres.dsn(),
            lambda: AdvowareClient(s.advoware, redis_url=s.redis_url),
            lambda: GoogleCalendarClient.from_settings(s.google, redis_url=s.redis_url),
            s,
            **kw,
        )

    def _client(self, name: str) -> Any:
        client = self._clients[name]
        if client is None:
            with self._lock:  # the planning step's threads share one context
                client = self._clients[name]
                if client is None:
                    client = self._clients[name] = self._factories[name]()
        return client

    @property
    def advoware(self) -> AdvowareClient:
        return self._client("advoware")

    @property
    def google(self) -> GoogleCalendarClient:
        return self._client("google")

    @property
    def write_protection(self) -> bool:
        return bool(self.advoware.settings.write_protection)

    def calendar(self, employee: str) -> tuple[CalendarSession, str]:
        """The session acting for the employee and their calendar id (provisioned by prepare)."""
        with self.hub.transaction() as conn:
            row = hub_calendars.get(conn, employee)
        if row is None or not row.calendar_id:
            raise LookupError(f"employee {employee} has no provisioned calendar")
        return self.google.session_for(row.email), row.calendar_id

    def close(self) -> None:
        if self._clients["advoware"] is not None:
            self._clients["advoware"].close()
        self.hub.close()
