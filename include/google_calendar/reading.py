"""Reading an employee's calendar: a full listing of a time window, or the changes since the
stored sync token. The caller handles the changes and then calls `ChangeSet.commit()`, which saves
`nextSyncToken`; a crash before that re-reads the same changes next time (nothing is lost).
A 410 fullSyncRequired falls back to a full listing; the hub's links are left as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from googleapiclient.errors import HttpError

from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.errors import SyncTokenExpired, error_info
from include.google_calendar.provisioning import TIME_ZONE
from include.google_calendar.service import CalendarSession
from include.hub import calendars as hub_calendars
from include.hub.db import connect

log = logging.getLogger(__name__)

MAX_PAGE = 2500  # Google's largest page


def rfc3339(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("time window bounds must be timezone-aware")
    return value.isoformat()


@dataclass
class Listing:
    items: list[dict[str, Any]]
    next_sync_token: str | None
    pages: int


def _list_all(session: CalendarSession, calendar_id: str, params: dict[str, Any], op: str) -> Listing:
    items: list[dict[str, Any]] = []
    token: str | None = None
    pages = 0
    while True:
        page = session.execute(
            lambda s, t=token: s.events().list(calendarId=calendar_id, pageToken=t, **params), op)
        pages += 1
        items.extend(page.get("items", []))
        token = page.get("nextPageToken")
        if not token:
            # nextSyncToken comes only with the last page.
            return Listing(items, page.get("nextSyncToken"), pages)


# The same parameters for the full and the incremental query (Google requires it);
# showDeleted=true so cancelled events (deletions) come back in both.
def _common(page_size: int) -> dict[str, Any]:
    return {"maxResults": min(page_size, MAX_PAGE), "showDeleted": True, "singleEvents": False,
            "timeZone": TIME_ZONE}


def list_window(session: CalendarSession, calendar_id: str, time_min: datetime | str,
                time_max: datetime | str, *, page_size: int = MAX_PAGE) -> Listing:
    """Every event touching [time_min, time_max), cancelled ones included, all pages."""
    params = _common(page_size) | {"timeMin": rfc3339(time_min), "timeMax": rfc3339(time_max)}
    return _list_all(session, calendar_id, params, "events.list")


def list_changes(session: CalendarSession, calendar_id: str, sync_token: str, *,
                 page_size: int = MAX_PAGE) -> Listing:
    """Everything changed since `sync_token` (deletions as status=cancelled), all pages."""
    params = _common(page_size) | {"syncToken": sync_token}
    try:
        return _list_all(session, calendar_id, params, "events.list")
    except HttpError as exc:
        if error_info(exc).status == 410:
            raise SyncTokenExpired(f"sync token of calendar {calendar_id} expired") from exc
        raise


@dataclass
class ChangeSet:
    employee: str
    calendar_id: str
    items: list[dict[str, Any]]
    next_sync_token: str | None
    kind: Literal["full", "incremental"]
    reason: Literal["no_token", "incremental", "full_sync_required", "forced"]
    pages: int
    _save: Callable[[str | None, bool], None] = field(repr=False, default=lambda t, f: None)
    committed: bool = False

    @property
    def full(self) -> bool:
        return self.kind == "full"

    def commit(self) -> None:
        """Call after the changes were handled: the next read starts after them."""
        self._save(self.next_sync_token, self.full)
        self.committed = True


class CalendarReader:
    def __init__(self, client: GoogleCalendarClient, hub_dsn: str, *, page_size: int = MAX_PAGE) -> None:
        self.client = client
        self.hub_dsn = hub_dsn
        self.page_size = page_size

    def read(self, employee: str, time_min: datetime | str, time_max: datetime | str, *,
             force_full: bool = False) -> ChangeSet:
        """Incremental when a sync token is stored, otherwise (or when it expired) the full window."""
        with connect(self.hub_dsn) as conn:
            row = hub_calendars.get(conn, employee)
        if row is None or not row.calendar_id:
            raise LookupError(f"employee {employee} has no provisioned calendar")
        session = self.client.session_for(row.email)
        calendar_id = row.calendar_id

        def save(token: str | None, full: bool) -> None:
            with connect(self.hub_dsn) as conn:
                hub_calendars.save_sync_token(conn, employee, token, full_sync=full)

        def changeset(listing: Listing, kind: Any, reason: Any) -> ChangeSet:
            return ChangeSet(employee, calendar_id, listing.items, listing.next_sync_token, kind, reason,
                             listing.pages, save)

        if row.sync_token and not force_full:
            try:
                listing = list_changes(session, calendar_id, row.sync_token, page_size=self.page_size)
                return changeset(listing, "incremental", "incremental")
            except SyncTokenExpired:
                log.info("sync token of %s expired (410): full listing, links kept", employee)
                with connect(self.hub_dsn) as conn:
                    hub_calendars.clear_sync_token(conn, employee)
                reason = "full_sync_required"
        else:
            reason = "forced" if row.sync_token else "no_token"
        listing = list_window(session, calendar_id, time_min, time_max, page_size=self.page_size)
        return changeset(listing, "full", reason)
