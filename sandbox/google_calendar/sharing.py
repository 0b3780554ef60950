"""Who sees a calendar: single ACL rules (get, patch, delete) and a user's own calendar list (get,
insert, delete), on top of the store's calendars (see docs/external-apis.md, "Calendars").

- A deleted ACL rule is gone: the user loses access (404 on the calendar, as for anyone who cannot
  see it) and the calendar leaves their list; `acl.list` without `showDeleted` does not show it.
  The data owner's own rule cannot be changed or deleted (403 `cannotChangeOwnAcl`).
- A user's calendar list is the calendars they own or that are shared with them by name, minus the
  ones they removed (`calendarList.delete`, their access stays), plus the ones they added
  (`calendarList.insert`, which needs access). Removing the primary calendar is refused (400).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from .errors import GoogleError, invalid, not_found
from .records import ROLES, Calendar


class SharingStore(Protocol):
    """What these rules need of the store (store.CalendarStore), so that only the store imports them."""

    calendars: dict[str, Calendar]
    list_overrides: dict[str, dict[str, bool]]

    def calendar(self, calendar_id: str, principal: str, need: str) -> Calendar: ...

    def role(self, cal: Calendar, principal: str) -> str: ...

    def _etag(self) -> str: ...


def _rule(store: SharingStore, principal: str, calendar_id: str, rule_id: str) -> tuple[Calendar, dict[str, Any]]:
    cal = store.calendar(calendar_id, principal, "owner")
    rule = cal.acl.get(rule_id)
    if rule is None:
        raise not_found()
    return cal, rule


def _not_own(cal: Calendar, rule: dict[str, Any]) -> None:
    if rule["scope"].get("value") == cal.owner and rule["role"] == "owner":
        raise GoogleError(403, "cannotChangeOwnAcl", "Cannot change your own access level.", domain="calendar")


def get_acl(store: SharingStore, principal: str, calendar_id: str, rule_id: str) -> dict[str, Any]:
    return copy.deepcopy(_rule(store, principal, calendar_id, rule_id)[1])


def patch_acl(store: SharingStore, principal: str, calendar_id: str, rule_id: str, body: Any) -> dict[str, Any]:
    cal, rule = _rule(store, principal, calendar_id, rule_id)
    if not isinstance(body, dict):
        raise GoogleError(400, "parseError", "Parse Error")
    role = body.get("role", rule["role"])
    if role not in ROLES:
        raise invalid("Invalid role.")
    if "scope" in body and body["scope"] != rule["scope"]:
        raise invalid("The scope of a rule cannot be changed.")
    if role != rule["role"]:
        _not_own(cal, rule)
    rule["role"] = role
    rule["etag"] = store._etag()
    return copy.deepcopy(rule)


def delete_acl(store: SharingStore, principal: str, calendar_id: str, rule_id: str) -> None:
    cal, rule = _rule(store, principal, calendar_id, rule_id)
    _not_own(cal, rule)
    del cal.acl[rule_id]


# -- the user's calendar list ---------------------------------------------------------------------
def named(cal: Calendar, principal: str) -> bool:
    """On the list by default: owned, or shared with the principal by name."""
    return cal.owner == principal or any(
        r["scope"].get("value") == principal and r["role"] != "none" for r in cal.acl.values()
    )


def listed(store: SharingStore, cal: Calendar, principal: str) -> bool:
    override = store.list_overrides.get(principal, {}).get(cal.id)
    return named(cal, principal) if override is None else override


def entry(store: SharingStore, cal: Calendar, principal: str) -> dict[str, Any]:
    out = cal.resource()
    out.update(
        {
            "kind": "calendar#calendarListEntry",
            "accessRole": store.role(cal, principal),
            "defaultReminders": [],
            "colorId": "1",
        }
    )
    out.pop("conferenceProperties", None)
    if cal.id == principal:
        out["primary"] = True
    return out


def _listed_calendar(store: SharingStore, principal: str, calendar_id: str) -> Calendar:
    store.calendar("primary", principal, "read")  # a principal always has a primary calendar
    cid = principal if calendar_id == "primary" else calendar_id
    cal = store.calendars.get(cid)
    if cal is None or store.role(cal, principal) == "none" or not listed(store, cal, principal):
        raise not_found()
    return cal


def get_entry(store: SharingStore, principal: str, calendar_id: str) -> dict[str, Any]:
    return entry(store, _listed_calendar(store, principal, calendar_id), principal)


def insert_entry(store: SharingStore, principal: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise GoogleError(400, "parseError", "Parse Error")
    calendar_id = body.get("id")
    if not isinstance(calendar_id, str) or not calendar_id:
        raise GoogleError(400, "required", "Missing calendar id.")
    cal = store.calendar(calendar_id, principal, "read")  # 404 without access
    store.list_overrides.setdefault(principal, {})[cal.id] = True
    return entry(store, cal, principal)


def delete_entry(store: SharingStore, principal: str, calendar_id: str) -> None:
    cal = _listed_calendar(store, principal, calendar_id)
    if cal.id == principal:
        raise invalid("The primary calendar cannot be removed from the calendar list.")
    store.list_overrides.setdefault(principal, {})[cal.id] = False
