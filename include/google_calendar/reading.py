"""Reading a calendar: a full listing of a time window, or the changes since a sync token.

Plain data in and out: the caller (include/calendar_sync/calendars.py) keeps the sync token and saves
`nextSyncToken` only after the changes were handled, so a crash re-reads the same changes (nothing
is lost). A 410 fullSyncRequired falls back to a full listing.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from include.google_calendar.errors import SyncTokenExpired, error_info
from include.google_calendar.provisioning import TIME_ZONE
from include.google_calendar.service import CalendarSession

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


def _events_page(service: Any, *, calendar_id: str, page_token: str | None, params: dict[str, Any]) -> HttpRequest:
    return service.events().list(calendarId=calendar_id, pageToken=page_token, **params)


def _list_all(session: CalendarSession, calendar_id: str, params: dict[str, Any], op: str) -> Listing:
    items: list[dict[str, Any]] = []
    token: str | None = None
    pages = 0
    while True:
        page = session.execute(
            functools.partial(_events_page, calendar_id=calendar_id, page_token=token, params=params), op
        )
        pages += 1
        items.extend(page.get("items", []))
        token = page.get("nextPageToken")
        if not token:
            # nextSyncToken comes only with the last page.
            return Listing(items, page.get("nextSyncToken"), pages)


# The same parameters for the full and the incremental query (Google requires it);
# showDeleted=true so cancelled events (deletions) come back in both.
def _common(page_size: int) -> dict[str, Any]:
    return {"maxResults": min(page_size, MAX_PAGE), "showDeleted": True, "singleEvents": False, "timeZone": TIME_ZONE}


def list_window(
    session: CalendarSession,
    calendar_id: str,
    time_min: datetime | str,
    time_max: datetime | str,
    *,
    page_size: int = MAX_PAGE,
) -> Listing:
    """Every event touching [time_min, time_max), cancelled ones included, all pages."""
    params = _common(page_size) | {"timeMin": rfc3339(time_min), "timeMax": rfc3339(time_max)}
    return _list_all(session, calendar_id, params, "events.list")


def list_changes(session: CalendarSession, calendar_id: str, sync_token: str, *, page_size: int = MAX_PAGE) -> Listing:
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
    """One read of a calendar: a full listing of the window, or the changes since a sync token."""

    calendar_id: str
    items: list[dict[str, Any]]
    next_sync_token: str | None
    kind: Literal["full", "incremental"]
    reason: Literal["no_token", "incremental", "full_sync_required", "forced", "calendar_recreated"]
    pages: int

    @property
    def full(self) -> bool:
        return self.kind == "full"


def read_changes(
    session: CalendarSession,
    calendar_id: str,
    sync_token: str | None,
    time_min: datetime | str,
    time_max: datetime | str,
    *,
    force_full: bool = False,
    page_size: int = MAX_PAGE,
) -> ChangeSet:
    """Incremental with `sync_token` (unless forced), else, or when Google says the token expired
    (410: `reason` full_sync_required), the full window. The caller keeps the token: the next read
    starts after these changes only once it saves `next_sync_token` (nothing is lost on a crash)."""

    def changeset(listing: Listing, kind: Any, reason: Any) -> ChangeSet:
        return ChangeSet(calendar_id, listing.items, listing.next_sync_token, kind, reason, listing.pages)

    if sync_token and not force_full:
        try:
            return changeset(
                list_changes(session, calendar_id, sync_token, page_size=page_size), "incremental", "incremental"
            )
        except SyncTokenExpired:
            log.info("sync token of calendar %s expired (410): full listing", calendar_id)
            reason = "full_sync_required"
    else:
        reason = "forced" if sync_token else "no_token"
    return changeset(list_window(session, calendar_id, time_min, time_max, page_size=page_size), "full", reason)
