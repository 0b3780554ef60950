"""One Google calendar per employee, created on demand; idempotent. Google's side only: which
calendar it is, and whether it had to be created. The hub remembers it (include/calendar_sync/calendars.py).

shared mode: the service account creates "Advoware – <Kürzel>" (Europe/Berlin) and shares it with
  the employee's e-mail through one ACL rule (role GOOGLE_ACL_ROLE, no notification mail).
delegated mode: acting as the employee, the calendar is created in the employee's own account.

Running twice creates nothing new. A remembered calendar that is gone (deleted by hand) or of the
other mode is reported `lost`: a new one is made, and the caller resets the employee's links.
`check_access` finds an employee who can no longer see the calendar (ACL rule removed, calendar taken
off their list) and gives the access back.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.errors import error_info
from include.google_calendar.service import CalendarSession

log = logging.getLogger(__name__)

TIME_ZONE = "Europe/Berlin"


def calendar_summary(employee: str) -> str:
    return f"Advoware – {employee}"


@dataclass(frozen=True)
class ProvisionResult:
    employee: str
    calendar_id: str
    mode: str
    created: bool  # a calendar was created by this call
    recreated: bool  # ... because the remembered one was gone (links were reset)
    acl_rule_id: str | None
    links_reset: int = 0  # set by the caller that resets the links of a lost calendar


class CalendarProvisioner:
    def __init__(self, client: GoogleCalendarClient) -> None:
        self.client = client

    def ensure(
        self, employee: str, email: str, *, known_id: str | None = None, known_mode: str | None = None
    ) -> ProvisionResult:
        """The employee's calendar: `known_id` (remembered, of `known_mode`) if it still exists in
        this mode, else one of ours found by name (a crash between create and remembering it), else
        a new one; in shared mode the employee's ACL rule too."""
        if not email:
            raise ValueError(f"employee {employee} has no e-mail address: cannot provision a calendar")
        session = self.client.session_for(email)
        mode = self.client.mode
        calendar_id: str | None = None
        lost = False
        if known_id:
            if known_mode == mode and self._exists(session, known_id):
                calendar_id = known_id
            else:  # deleted by hand, or the mode changed: the old calendar is not ours to use
                lost = True
        created = False
        if calendar_id is None:
            calendar_id = self._find_own(session, employee)
            if calendar_id is None:
                calendar_id = self._create(session, employee)
                created = True
        acl_rule_id = self._ensure_acl(session, calendar_id, email) if mode == "shared" else None
        if created or lost:
            log.info(
                "calendar of %s: %s (mode %s, created=%s, recreated=%s)", employee, calendar_id, mode, created, lost
            )
        return ProvisionResult(employee, calendar_id, mode, created, lost, acl_rule_id)

    def check_access(self, employee: str, email: str, calendar_id: str) -> str:
        """Can the employee still see their calendar? One request when all is well. Shared mode: the
        ACL rule is there with the configured role, else it is made again (no mail): "reshared".
        Delegated mode: the calendar is on the employee's calendar list, else it is put back:
        "relisted". "lost": the calendar itself is gone (the caller makes it again); else "ok".
        (Shared mode cannot see the employee's own list: without delegation it is theirs alone.)"""
        session = self.client.session_for(email)
        try:
            if self.client.mode == "shared":
                rule = self._find_rule(session, calendar_id, email)
                if rule is not None and rule.get("role") == self.client.settings.acl_role:
                    return "ok"
                self._ensure_acl(session, calendar_id, email)
                outcome = "reshared"
            else:
                try:
                    session.execute(lambda s: s.calendarList().get(calendarId=calendar_id), "calendarList.get")
                    return "ok"
                except HttpError as exc:
                    if error_info(exc).status != 404:
                        raise
                session.execute(lambda s: s.calendarList().insert(body={"id": calendar_id}), "calendarList.insert")
                outcome = "relisted"
        except HttpError as exc:
            if error_info(exc).status in (404, 410):
                return "lost"
            raise
        log.warning("calendar of %s (%s): employee's access restored (%s)", employee, calendar_id, outcome)
        return outcome

    # -- steps -------------------------------------------------------------------------------
    def _exists(self, session: CalendarSession, calendar_id: str) -> bool:
        try:
            session.execute(lambda s: s.calendars().get(calendarId=calendar_id), "calendars.get")
            return True
        except HttpError as exc:
            if error_info(exc).status in (404, 410):
                return False
            raise

    def _find_own(self, session: CalendarSession, employee: str) -> str | None:
        """A calendar of ours with the right name that the hub does not know (e.g. a crash between
        create and the hub write): adopt it instead of creating a second one."""
        summary = calendar_summary(employee)
        token: str | None = None
        while True:
            page = session.execute(
                functools.partial(_owned_calendars_page, page_token=token),
                "calendarList.list",
            )
            for item in page.get("items", []):
                if item.get("summary") == summary and not item.get("deleted"):
                    return str(item["id"])
            token = page.get("nextPageToken")
            if not token:
                return None

    def _create(self, session: CalendarSession, employee: str) -> str:
        body = {"summary": calendar_summary(employee), "timeZone": TIME_ZONE}
        cal = session.execute(lambda s: s.calendars().insert(body=body), "calendars.insert")
        return str(cal["id"])

    def _ensure_acl(self, session: CalendarSession, calendar_id: str, email: str) -> str:
        role = self.client.settings.acl_role
        rule = self._find_rule(session, calendar_id, email)
        if rule is not None:
            if rule.get("role") != role:
                session.execute(
                    lambda s: s.acl().patch(
                        calendarId=calendar_id, ruleId=rule["id"], body={"role": role}, sendNotifications=False
                    ),
                    "acl.patch",
                )
            return str(rule["id"])
        body = {"role": role, "scope": {"type": "user", "value": email}}
        created = session.execute(
            lambda s: s.acl().insert(calendarId=calendar_id, body=body, sendNotifications=False), "acl.insert"
        )
        return str(created["id"])

    def _find_rule(self, session: CalendarSession, calendar_id: str, email: str) -> dict[str, Any] | None:
        token: str | None = None
        while True:
            page = session.execute(functools.partial(_acl_page, calendar_id=calendar_id, page_token=token), "acl.list")
            for rule in page.get("items", []):
                scope = rule.get("scope") or {}
                if scope.get("type") == "user" and str(scope.get("value", "")).lower() == email.lower():
                    return rule  # role "none" = a deleted rule: patched back to the wanted role
            token = page.get("nextPageToken")
            if not token:
                return None


def _owned_calendars_page(service: Any, *, page_token: str | None) -> HttpRequest:
    return service.calendarList().list(maxResults=250, minAccessRole="owner", pageToken=page_token)


def _acl_page(service: Any, *, calendar_id: str, page_token: str | None) -> HttpRequest:
    return service.acl().list(calendarId=calendar_id, maxResults=250, pageToken=page_token)
