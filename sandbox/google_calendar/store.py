"""In-memory state of the Calendar sandbox: calendars, ACLs, events, sync and page tokens.

Every event write takes the next value of one change counter (`seq`); a sync token is "changes
after seq N of calendar C in this state epoch", so incremental lists return exactly what changed
since, cancelled tombstones included. Tokens are opaque base64 strings to the client.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from . import event_model as em
from . import series, sharing
from .errors import GoogleError, bad_param, invalid, not_found, required
from .records import NEED, RANK, ROLES, SCOPE_TYPES, Calendar, StoredEvent

MAX_RESULTS_DEFAULT = 250
MAX_RESULTS_CAP = 2500
SYNC_FORBIDDEN = (
    "timeMin",
    "timeMax",
    "updatedMin",
    "orderBy",
    "q",
    "iCalUID",
    "privateExtendedProperty",
    "sharedExtendedProperty",
)


# one item of a listing: its sort key (also the page cursor), its resource (for the filters), its rendering
Entry = tuple[list[Any], dict[str, Any], Callable[[], dict[str, Any]]]


def _encode(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if str(value).lower() in ("true", "1"):
        return True
    if str(value).lower() in ("false", "0"):
        return False
    raise bad_param(name, f"Invalid boolean value: '{value}'.", "invalidParameter")


class CalendarStore:
    def __init__(self, default_time_zone: str = "UTC") -> None:
        self.default_time_zone = default_time_zone
        self.epoch = secrets.token_hex(4)  # tokens of an earlier state (before a reset) are unknown
        self.generation = 0  # bumped by invalidate_sync_tokens
        self.seq = 0
        self._order = 0
        self._last_etag = 0
        self.enforce_access = True
        self.timing_model = "anchor"  # series.TIMING_MODELS: what a master timing change does to exceptions
        self.calendars: dict[str, Calendar] = {}
        # principal -> calendar id -> on their list or not, where they changed it (sharing.py)
        self.list_overrides: dict[str, dict[str, bool]] = {}

    # -- helpers -----------------------------------------------------------------------------
    def _etag(self) -> str:
        self._last_etag = max(self._last_etag + 1, int(time.time() * 1_000_000))
        return f'"{self._last_etag}"'

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def role(self, cal: Calendar, principal: str) -> str:
        if not self.enforce_access or cal.owner == principal:
            return "owner"
        best = "none"
        domain = principal.rsplit("@", 1)[-1] if "@" in principal else None
        for rule in cal.acl.values():
            scope = rule["scope"]
            hit = (
                scope["type"] == "default"
                or (scope["type"] in ("user", "group") and scope.get("value") == principal)
                or (scope["type"] == "domain" and domain is not None and scope.get("value") == domain)
            )
            if hit and RANK[rule["role"]] > RANK[best]:
                best = rule["role"]
        return best

    def calendar(self, calendar_id: str, principal: str, need: str) -> Calendar:
        """Resolve `primary`, create a principal's primary calendar on first use, check access."""
        if calendar_id == "primary":
            calendar_id = principal
        cal = self.calendars.get(calendar_id)
        if cal is None and calendar_id == principal:
            cal = self._create(principal, principal, self.default_time_zone, {"summary": principal})
        if cal is None:
            raise not_found()
        role = self.role(cal, principal)
        if role == "none":
            raise not_found()  # Google hides calendars you cannot see
        if RANK[role] < NEED[need]:
            level = {"read": "reader", "write": "writer", "owner": "owner"}[need]
            raise GoogleError(403, "requiredAccessLevel", f"You need to have {level} access to this calendar.")
        return cal

    def _create(self, calendar_id: str, owner: str, time_zone: str, body: dict[str, Any]) -> Calendar:
        """A calendar of `owner` (its ACL's owner rule included); summary, description, location from `body`."""
        cal = Calendar(
            calendar_id, body["summary"], owner, time_zone, self._etag(), body.get("description"), body.get("location")
        )
        rule_id = f"user:{owner}"
        cal.acl[rule_id] = {
            "kind": "calendar#aclRule",
            "etag": self._etag(),
            "id": rule_id,
            "scope": {"type": "user", "value": owner},
            "role": "owner",
        }
        self.calendars[calendar_id] = cal
        return cal

    # -- calendars ---------------------------------------------------------------------------
    def insert_calendar(self, principal: str, body: dict[str, Any], calendar_id: str | None = None) -> dict:
        summary = body.get("summary")
        if not isinstance(summary, str) or not summary:
            raise required("Missing summary.")
        tz = body.get("timeZone") or self.default_time_zone
        if not em.valid_zone(tz):
            raise invalid("Invalid time zone definition.")
        if calendar_id is None:
            calendar_id = f"{em.new_event_id()}@group.calendar.google.com"
        elif calendar_id in self.calendars:
            raise GoogleError(409, "duplicate")
        cal = self._create(calendar_id, principal, tz, body)
        return cal.resource()

    def get_calendar(self, principal: str, calendar_id: str) -> dict:
        return self.calendar(calendar_id, principal, "read").resource()

    def delete_calendar(self, principal: str, calendar_id: str) -> None:
        cal = self.calendar(calendar_id, principal, "owner")
        if cal.id == cal.owner:
            raise invalid("Cannot delete primary calendar.")
        del self.calendars[cal.id]

    def calendar_list(self, principal: str, params: dict[str, Any]) -> dict:
        self.calendar("primary", principal, "read")  # a principal always has a primary calendar
        min_role = params.get("minAccessRole") or "freeBusyReader"
        if min_role not in ROLES[1:]:
            raise bad_param("minAccessRole", f"Invalid string value: '{min_role}'.", "invalidParameter")
        items = []
        for cal in self.calendars.values():
            if not sharing.listed(self, cal, principal):
                continue  # owned or shared by name, unless the principal removed it (or added it)
            role = self.role(cal, principal)
            if RANK[role] < RANK[min_role]:
                continue
            items.append(sharing.entry(self, cal, principal))
        raw_max = str(params.get("maxResults") or "100")
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise bad_param("maxResults", f"Invalid value '{raw_max}'.", "invalidParameter")
        max_results = min(int(raw_max), 250)
        offset = int(params.get("pageToken") or 0) if str(params.get("pageToken") or "0").isdigit() else 0
        page = items[offset : offset + max_results]
        out: dict[str, Any] = {"kind": "calendar#calendarList", "etag": self._etag(), "items": page}
        if offset + max_results < len(items):
            out["nextPageToken"] = str(offset + max_results)
        return out

    # -- ACL ---------------------------------------------------------------------------------
    def insert_acl(self, principal: str, calendar_id: str, body: dict[str, Any]) -> dict:
        cal = self.calendar(calendar_id, principal, "owner")
        role = body.get("role")
        scope = body.get("scope")
        if role not in ROLES:
            raise required("Missing or invalid role.") if role is None else invalid("Invalid role.")
        if not isinstance(scope, dict) or scope.get("type") not in SCOPE_TYPES:
            raise required("Missing or invalid scope.")
        value = scope.get("value")
        if scope["type"] != "default" and not (isinstance(value, str) and value):
            raise required("Missing scope value.")
        rule_id = "default" if scope["type"] == "default" else f"{scope['type']}:{value}"
        rule = {
            "kind": "calendar#aclRule",
            "etag": self._etag(),
            "id": rule_id,
            "scope": {"type": scope["type"], **({"value": value} if scope["type"] != "default" else {})},
            "role": role,
        }
        cal.acl[rule_id] = rule
        return copy.deepcopy(rule)

    def list_acl(self, principal: str, calendar_id: str) -> dict:
        cal = self.calendar(calendar_id, principal, "owner")
        return {
            "kind": "calendar#acl",
            "etag": self._etag(),
            "items": [copy.deepcopy(r) for r in cal.acl.values()],
        }

    # -- events: reading ---------------------------------------------------------------------
    def render(self, ev: StoredEvent, out_tz: str, *, tombstone: bool = False) -> dict[str, Any]:
        if tombstone:
            out = {"kind": "calendar#event", "etag": ev.res["etag"], "id": ev.res["id"], "status": "cancelled"}
            if ev.is_exception and ev.original is not None:
                # a cancelled instance keeps what identifies it within its series
                out["recurringEventId"] = ev.res["recurringEventId"]
                out["originalStartTime"] = em.render_when(ev.original.stored, out_tz)
            return out
        res = copy.deepcopy(ev.res)
        res["start"] = em.render_when(ev.start.stored, out_tz)
        res["end"] = em.render_when(ev.end.stored, out_tz)
        if ev.original is not None:
            res["originalStartTime"] = em.render_when(ev.original.stored, out_tz)
        return res

    def render_virtual(self, master: StoredEvent, occ: series.Occurrence, out_tz: str) -> dict[str, Any]:
        """An occurrence no exception replaces, as events.get/instances/list(singleEvents) show it."""
        res = series.instance_resource(master.res, occ)
        res["start"] = em.render_when(series.when_of(occ, master.start, end=False).stored, out_tz)
        res["end"] = em.render_when(series.when_of(occ, master.end, end=True).stored, out_tz)
        res["originalStartTime"] = em.render_when(series.original_when(occ, master.start).stored, out_tz)
        return res

    def _instance(self, cal: Calendar, event_id: str) -> tuple[StoredEvent, series.Occurrence] | None:
        """(master, occurrence) when `event_id` names an occurrence of a live series, else None."""
        parts = series.split_instance_id(event_id)
        if parts is None:
            return None
        master = cal.events.get(parts[0])
        if master is None or not master.is_master or master.res["status"] == "cancelled":
            return None
        occ = series.find(master.start, master.end, master.res["recurrence"], cal.time_zone, parts[1])
        return (master, occ) if occ is not None else None

    def _exceptions(self, cal: Calendar, master_id: str) -> list[StoredEvent]:
        return [e for e in cal.events.values() if e.res.get("recurringEventId") == master_id and not e.removed]

    def get_event(self, principal: str, calendar_id: str, event_id: str, params: dict[str, Any]) -> dict:
        cal = self.calendar(calendar_id, principal, "read")
        out_tz = self._out_tz(cal, params)
        ev = cal.events.get(event_id)
        if ev is not None and not ev.removed:
            return self.render(ev, out_tz)  # cancelled events too, with their details
        instance = self._instance(cal, event_id)
        if instance is not None:  # a virtual instance (or one whose exception Google removed)
            return self.render_virtual(*instance, out_tz)
        if ev is None:
            raise not_found()
        return self.render(ev, out_tz)  # a removed exception that is no occurrence any more: deleted

    @staticmethod
    def _out_tz(cal: Calendar, params: dict[str, Any]) -> str:
        tz = params.get("timeZone")
        return tz if tz and em.valid_zone(tz) else cal.time_zone

    @staticmethod
    def _max_results(params: dict[str, Any]) -> int:
        try:
            max_results = int(params.get("maxResults") or MAX_RESULTS_DEFAULT)
        except ValueError as exc:
            raise bad_param("maxResults", "Invalid integer value.", "invalidParameter") from exc
        if max_results < 1:
            raise bad_param(
                "maxResults",
                f"Invalid value '{max_results}'. Values must be within the range: [1, 2500]",
                "invalidParameter",
            )
        return min(max_results, MAX_RESULTS_CAP)

    @staticmethod
    def _bounds(params: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
        time_min = em.parse_rfc3339(params["timeMin"], "timeMin") if params.get("timeMin") else None
        time_max = em.parse_rfc3339(params["timeMax"], "timeMax") if params.get("timeMax") else None
        if time_min is not None and time_max is not None and time_min >= time_max:
            raise GoogleError(400, "timeRangeEmpty", location="timeMax", location_type="parameter")
        return time_min, time_max

    def list_events(self, principal: str, calendar_id: str, params: dict[str, Any]) -> dict:
        cal = self.calendar(calendar_id, principal, "read")
        sync_token = params.get("syncToken")
        single_events = _flag(params, "singleEvents", False)
        if sync_token is not None:
            for name in SYNC_FORBIDDEN:
                if params.get(name) not in (None, [], ""):
                    raise GoogleError(
                        400,
                        "syncTokenWithRequestRestrictions",
                        "Sync token cannot be used with other request restrictions.",
                        domain="calendar",
                        location=name,
                        location_type="parameter",
                    )
            if params.get("showDeleted") is not None and not _flag(params, "showDeleted", True):
                raise GoogleError(
                    400,
                    "syncTokenWithRequestRestrictions",
                    "Sync token cannot be used with other request restrictions.",
                    domain="calendar",
                    location="showDeleted",
                    location_type="parameter",
                )
            if single_events:
                raise GoogleError(
                    400,
                    "notSupportedBySandbox",
                    "singleEvents=true with a syncToken is not implemented by the sandbox.",
                    location="singleEvents",
                    location_type="parameter",
                )
        order_by = params.get("orderBy")
        if order_by not in (None, "updated", "startTime"):
            raise bad_param(
                "orderBy",
                f"Invalid string value: '{order_by}'. Allowed values: [startTime, updated]",
                "invalidParameter",
            )
        if order_by == "startTime" and not single_events:
            raise GoogleError(400, "badRequest", "The requested ordering is not available for the particular query.")
        max_results = self._max_results(params)
        time_min, time_max = self._bounds(params)
        updated_min = em.parse_rfc3339(params["updatedMin"], "updatedMin") if params.get("updatedMin") else None

        page_token = params.get("pageToken")
        cursor: list[Any] | None = None
        if page_token:
            page = _decode(page_token)
            if page is None or page.get("e") != self.epoch or page.get("c") != cal.id:
                raise bad_param("pageToken", "Invalid page token.")
            snapshot, since, cursor = page["s"], page.get("f"), page["k"]
        else:
            snapshot = self.seq
            since = None
            if sync_token is not None:
                token = _decode(sync_token)
                if (
                    token is None
                    or token.get("e") != self.epoch
                    or token.get("g") != self.generation
                    or token.get("c") != cal.id
                ):
                    raise GoogleError(410, "fullSyncRequired", location="syncToken", location_type="parameter")
                since = int(token["s"])

        show_deleted = since is not None or updated_min is not None or _flag(params, "showDeleted", False)
        matches = self._filters(params, updated_min)
        out_tz = self._out_tz(cal, params)
        if single_events:
            entries = self._expanded(cal, show_deleted, time_min, time_max, order_by, out_tz)
        else:
            entries = self._stored(cal, since, show_deleted, time_min, time_max, order_by, out_tz)
        selected = [(k, res, render) for k, res, render in entries if matches(res) and (cursor is None or k > cursor)]
        selected.sort(key=lambda entry: entry[0])
        page_items = selected[:max_results]
        out: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{self.seq}{cal.etag.strip(chr(34))}"',
            "summary": cal.summary,
            "description": cal.description or "",
            "updated": em.rfc3339_utc(datetime.now(UTC)),
            "timeZone": cal.time_zone,
            "accessRole": self.role(cal, principal),
            "defaultReminders": [],
            "items": [render() for _, _, render in page_items],
        }
        if len(selected) > max_results:
            out["nextPageToken"] = _encode(
                {"e": self.epoch, "c": cal.id, "s": snapshot, "f": since, "k": page_items[-1][0]}
            )
        else:
            # Only the last page carries it; it covers every change up to the first page.
            out["nextSyncToken"] = _encode({"e": self.epoch, "g": self.generation, "c": cal.id, "s": snapshot})
        return out

    def _filters(self, params: dict[str, Any], updated_min: datetime | None) -> Callable[[dict[str, Any]], bool]:
        """The listing's content filters over an event resource."""
        private_filters = self._property_filters(params, "privateExtendedProperty")
        shared_filters = self._property_filters(params, "sharedExtendedProperty")
        event_types = params.get("eventTypes") or []
        text = (params.get("q") or "").lower()
        ical_uid = params.get("iCalUID")

        def matches(res: dict[str, Any]) -> bool:
            if updated_min is not None and datetime.fromisoformat(res["updated"]) < updated_min:
                return False
            if ical_uid and res.get("iCalUID") != ical_uid:
                return False
            if event_types and res.get("eventType", "default") not in event_types:
                return False
            props = res.get("extendedProperties") or {}
            if any((props.get("private") or {}).get(k) != v for k, v in private_filters):
                return False
            if any((props.get("shared") or {}).get(k) != v for k, v in shared_filters):
                return False
            return not text or any(
                text in str(res.get(f) or "").lower() for f in ("summary", "description", "location")
            )

        return matches

    def _stored(
        self,
        cal: Calendar,
        since: int | None,
        show_deleted: bool,
        time_min: datetime | None,
        time_max: datetime | None,
        order_by: str | None,
        out_tz: str,
    ) -> list[Entry]:
        """singleEvents=false: the stored events, masters and exceptions as separate items."""
        out: list[Entry] = []
        for ev in cal.events.values():
            res = ev.res
            cancelled = res["status"] == "cancelled"
            if since is not None and ev.seq <= since:
                continue
            # A cancelled exception (one occurrence deleted) is listed without showDeleted, as
            # Google's reference says; a removed one (Google dropped it) is a deleted record.
            if cancelled and not show_deleted and not (ev.is_exception and not ev.removed):
                continue
            if (not cancelled or since is None) and not em.overlaps(
                ev.start, ev.end, res.get("recurrence"), time_min, time_max, cal.time_zone
            ):
                continue
            key = [res["updated"], ev.order] if order_by == "updated" else [ev.order]
            out.append((key, res, partial(self.render, ev, out_tz, tombstone=cancelled)))
        return out

    def _expanded(
        self,
        cal: Calendar,
        show_deleted: bool,
        time_min: datetime | None,
        time_max: datetime | None,
        order_by: str | None,
        out_tz: str,
    ) -> list[Entry]:
        """singleEvents=true: single events and the instances of every series (exceptions in the place
        of their occurrence), no masters; cancelled instances only with showDeleted."""
        out = []
        replaced: dict[str, set[str]] = {}  # master id -> instance ids a stored exception replaces
        for ev in cal.events.values():
            if ev.is_exception and not ev.removed:
                replaced.setdefault(ev.res["recurringEventId"], set()).add(ev.res["id"])

        def add(res: dict[str, Any], start: datetime, render: Callable[[], dict[str, Any]]) -> None:
            tail = [start.astimezone(UTC).isoformat(), res["id"]]
            out.append(([res["updated"], *tail] if order_by == "updated" else tail, res, render))

        for ev in cal.events.values():
            cancelled = ev.res["status"] == "cancelled"
            if ev.is_master:
                if not cancelled:
                    self._add_occurrences(cal, ev, replaced.get(ev.res["id"], set()), time_min, time_max, out_tz, add)
                continue
            if ev.removed or (cancelled and not show_deleted):
                continue
            if not em.overlaps(ev.start, ev.end, None, time_min, time_max, cal.time_zone):
                continue
            add(ev.res, ev.start.instant, partial(self.render, ev, out_tz, tombstone=cancelled))
        return out

    def _add_occurrences(
        self,
        cal: Calendar,
        master: StoredEvent,
        replaced: set[str],
        time_min: datetime | None,
        time_max: datetime | None,
        out_tz: str,
        add: Callable[..., None],
    ) -> None:
        try:
            for occ in series.occurrences(master.start, master.end, master.res["recurrence"], cal.time_zone):
                if time_max is not None and occ.instant >= time_max:
                    break
                if time_min is not None and occ.instant + occ.duration <= time_min:
                    continue
                if series.instance_id(master.res["id"], occ) in replaced:
                    continue
                res = series.instance_resource(master.res, occ)
                add(res, occ.instant, lambda occ=occ: self.render_virtual(master, occ, out_tz))
        except (ValueError, TypeError):
            return  # a rule dateutil cannot expand has no instances here

    def list_instances(self, principal: str, calendar_id: str, event_id: str, params: dict[str, Any]) -> dict:
        """events.instances: the occurrences of one series in order of their original start, each
        exception in the place of its occurrence; cancelled ones only with showDeleted."""
        cal = self.calendar(calendar_id, principal, "read")
        master = cal.events.get(event_id)
        if master is None or master.is_exception:
            raise not_found()
        if master.res["status"] == "cancelled":
            raise GoogleError(410, "deleted")
        max_results = self._max_results(params)
        time_min, time_max = self._bounds(params)
        show_deleted = _flag(params, "showDeleted", False)
        out_tz = self._out_tz(cal, params)
        wanted = self._original_start(params.get("originalStart"), cal)
        page_token = params.get("pageToken")
        cursor = None
        if page_token:
            page = _decode(page_token)
            if page is None or page.get("e") != self.epoch or page.get("c") != cal.id or page.get("m") != event_id:
                raise bad_param("pageToken", "Invalid page token.")
            cursor = page["k"]

        def inside(start: datetime, end: datetime) -> bool:
            # timeMin is an inclusive bound on the end here, timeMax an exclusive one on the start
            return (time_min is None or end >= time_min) and (time_max is None or start < time_max)

        entries: list[tuple[list[Any], Callable[[], dict[str, Any]]]] = []
        exceptions = {e.res["id"]: e for e in self._exceptions(cal, event_id)}
        for exc in exceptions.values():
            cancelled = exc.res["status"] == "cancelled"
            if (cancelled and not show_deleted) or exc.original is None:
                continue
            if not inside(exc.start.instant, exc.end.instant) or (wanted and exc.original.instant != wanted):
                continue
            entries.append(
                (
                    [exc.original.instant.isoformat(), exc.res["id"]],
                    partial(self.render, exc, out_tz, tombstone=cancelled),
                )
            )
        if master.is_master:
            try:
                for occ in series.occurrences(master.start, master.end, master.res["recurrence"], cal.time_zone):
                    if time_max is not None and occ.instant >= time_max:
                        break
                    iid = series.instance_id(event_id, occ)
                    if iid in exceptions or not inside(occ.instant, occ.instant + occ.duration):
                        continue
                    if wanted and occ.instant != wanted:
                        continue
                    entries.append(([occ.instant.isoformat(), iid], partial(self.render_virtual, master, occ, out_tz)))
            except (ValueError, TypeError):
                pass
        entries = sorted((e for e in entries if cursor is None or e[0] > cursor), key=lambda e: e[0])
        page_items = entries[:max_results]
        out: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{self.seq}{master.res["etag"].strip(chr(34))}"',
            "summary": cal.summary,
            "updated": master.res["updated"],
            "timeZone": cal.time_zone,
            "accessRole": self.role(cal, principal),
            "defaultReminders": [],
            "items": [render() for _, render in page_items],
        }
        if len(entries) > max_results:
            out["nextPageToken"] = _encode({"e": self.epoch, "c": cal.id, "m": event_id, "k": page_items[-1][0]})
        return out

    @staticmethod
    def _original_start(value: str | None, cal: Calendar) -> datetime | None:
        """events.instances' originalStart (an RFC 3339 date-time, or a date for all-day series)."""
        if not value:
            return None
        if "T" in value:
            return em.parse_rfc3339(value, "originalStart").astimezone(UTC)
        try:
            day = datetime.fromisoformat(value[:10])
        except ValueError as exc:
            raise bad_param("originalStart", "Invalid value for originalStart.") from exc
        return day.replace(tzinfo=em.zone(cal.time_zone)).astimezone(UTC)

    @staticmethod
    def _property_filters(params: dict[str, Any], name: str) -> list[tuple[str, str]]:
        out = []
        for item in params.get(name) or []:
            k, sep, v = str(item).partition("=")
            if not sep or not k:
                raise bad_param(name, f"Invalid {name} value: must be propertyName=value.")
            out.append((k, v))
        return out

    def invalidate_sync_tokens(self) -> None:
        self.generation += 1

    # -- events: writing ---------------------------------------------------------------------
    def _stamp(self, ev_res: dict[str, Any], now: datetime | None = None) -> None:
        ev_res["etag"] = self._etag()
        ev_res["updated"] = em.rfc3339_utc(now or datetime.now(UTC))

    @staticmethod
    def _check_if_match(ev: StoredEvent, if_match: str | None) -> None:
        if if_match is None or if_match.strip() == "*":
            return
        wanted = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
        if ev.res["etag"].strip('"') not in wanted:
            raise GoogleError(412, "conditionNotMet", location="If-Match", location_type="header")

    def insert_event(self, principal: str, calendar_id: str, body: Any, *, seeded: bool = False) -> dict:
        cal = self.calendar(calendar_id, principal, "write")
        if not isinstance(body, dict):
            raise GoogleError(400, "parseError", "Parse Error")
        event_id = body.get("id")
        if event_id is None:
            event_id = em.new_event_id()
            while event_id in cal.events:
                event_id = em.new_event_id()
        else:
            em.check_event_id(event_id)
            if event_id in cal.events:  # also when that event was deleted: ids are never reused
                raise GoogleError(409, "duplicate")
        res = em.drop_nulls(em.writable(body))
        res.setdefault("status", "confirmed")
        res.setdefault("eventType", "default")
        res.setdefault("sequence", 0)
        res.setdefault("reminders", {"useDefault": True})
        start, end = em.check_event(res, cal.time_zone)
        now = datetime.now(UTC)
        created = body.get("created") if seeded and body.get("created") else em.rfc3339_utc(now)
        eid = base64.b64encode(f"{event_id} {cal.id}".encode()).decode().rstrip("=")
        res.update(
            {
                "kind": "calendar#event",
                "id": event_id,
                "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
                "created": created,
                "creator": {"email": principal},
                "organizer": {"email": cal.id, "displayName": cal.summary, "self": True},
                "iCalUID": body.get("iCalUID") or f"{event_id}@google.com",
            }
        )
        self._stamp(res, now)
        if seeded and body.get("updated"):
            res["updated"] = body["updated"]
        self._order += 1
        stored = StoredEvent(res, self._order, self._next_seq(), start, end)
        cal.events[event_id] = stored
        return self.render(stored, cal.time_zone)

    def _existing(self, cal: Calendar, event_id: str) -> tuple[StoredEvent, bool]:
        """The event a write goes to, and whether it is new: an occurrence without a stored exception
        (or whose exception Google removed) is materialised as a copy of its master (not yet stored:
        the write decides). A removed exception that is no occurrence any more cannot be written."""
        ev = cal.events.get(event_id)
        if ev is not None and not ev.removed:
            return ev, False
        instance = self._instance(cal, event_id)
        if instance is None:
            raise not_found()
        master, occ = instance
        self._order += 1
        start = series.when_of(occ, master.start, end=False)
        return StoredEvent(
            series.instance_resource(master.res, occ),
            self._order,
            master.seq,
            start,
            series.when_of(occ, master.end, end=True),
            original=start,
        ), True

    def _apply(self, cal: Calendar, ev: StoredEvent, new_res: dict[str, Any], sent_sequence: Any) -> dict:
        """Validate and store a new version of `ev` (patch or update)."""
        if new_res.get("eventType", "default") != ev.res.get("eventType", "default"):
            raise invalid("The event type cannot be changed.")
        current = ev.res.get("sequence", 0)
        if isinstance(sent_sequence, int) and sent_sequence < current:
            raise invalid(em.SEQUENCE_MESSAGE)
        if ev.is_exception:
            new_res.pop("recurrence", None)  # an instance holds no rule of its own
        start, end = em.check_event(new_res, cal.time_zone)
        timing_changed = (
            start.stored != ev.start.stored
            or end.stored != ev.end.stored
            or new_res.get("recurrence") != ev.res.get("recurrence")
        )
        sequence = sent_sequence if isinstance(sent_sequence, int) else current
        if timing_changed and sequence == current:
            sequence += 1  # iCalendar: a significant (time) revision bumps the sequence
        new_res["sequence"] = sequence
        for keep in ("kind", "id", "htmlLink", "created", "creator", "organizer", "iCalUID", "recurringEventId"):
            if keep in ev.res:
                new_res[keep] = ev.res[keep]
        self._stamp(new_res)
        old_res, old_start, old_end = ev.res, ev.start, ev.end
        ev.res, ev.start, ev.end, ev.seq, ev.removed = new_res, start, end, self._next_seq(), False
        cal.events[ev.res["id"]] = ev
        if not ev.is_exception and (old_res.get("recurrence") or new_res.get("recurrence")):
            self._after_master_write(cal, ev, old_res, old_start, old_end, timing_changed)
        return self.render(ev, cal.time_zone)

    def _after_master_write(
        self,
        cal: Calendar,
        master: StoredEvent,
        old_res: dict[str, Any],
        old_start: em.When,
        old_end: em.When,
        timing_changed: bool,
    ) -> None:
        """What a write to a master does to its exceptions: fields propagate where the exception
        still holds the master's old value; a timing change applies the timing model."""
        if master.res["status"] == "cancelled":  # a patch to status cancelled deletes the series
            for exc in self._exceptions(cal, master.res["id"]):
                self._remove(exc)
            return
        for exc in self._exceptions(cal, master.res["id"]):
            changed = series.propagate_fields(old_res, master.res, exc.res)
            if timing_changed:
                key = series.split_instance_id(exc.res["id"])[1]  # type: ignore[index]
                now = (
                    series.find(master.start, master.end, master.res.get("recurrence") or [], cal.time_zone, key)
                    if master.is_master
                    else None
                )
                if self.timing_model == "reset" or (self.timing_model == "anchor" and now is None):
                    self._remove(exc)
                    continue
                before = series.find(old_start, old_end, old_res.get("recurrence") or [], cal.time_zone, key)
                unmoved = before is not None and (exc.start.instant, exc.end.instant) == (
                    before.instant,
                    before.instant + before.duration,
                )
                if now is not None and unmoved:  # it still sits where the series puts it: it follows
                    exc.start = series.when_of(now, master.start, end=False)
                    exc.end = series.when_of(now, master.end, end=True)
                    changed = True
            if changed:
                self._stamp(exc.res)
                exc.seq = self._next_seq()

    def _remove(self, exc: StoredEvent) -> None:
        exc.removed = True
        exc.res["status"] = "cancelled"
        self._stamp(exc.res)
        exc.seq = self._next_seq()

    def patch_event(self, principal: str, calendar_id: str, event_id: str, body: Any, if_match: str | None) -> dict:
        cal = self.calendar(calendar_id, principal, "write")
        ev, _ = self._existing(cal, event_id)
        self._check_if_match(ev, if_match)
        if not isinstance(body, dict):
            raise GoogleError(400, "parseError", "Parse Error")
        patch = em.writable(body)
        # The stored start/end are in canonical form; merge the patch into what the client saw.
        base = copy.deepcopy(ev.res)
        base["start"], base["end"] = dict(ev.start.stored), dict(ev.end.stored)
        merged = em.merge_patch(base, patch)
        merged.setdefault("status", "confirmed")
        return self._apply(cal, ev, merged, patch.get("sequence"))

    def update_event(self, principal: str, calendar_id: str, event_id: str, body: Any, if_match: str | None) -> dict:
        cal = self.calendar(calendar_id, principal, "write")
        ev, _ = self._existing(cal, event_id)
        self._check_if_match(ev, if_match)
        if not isinstance(body, dict):
            raise GoogleError(400, "parseError", "Parse Error")
        new_res = em.drop_nulls(em.writable(body))  # PUT: whatever is not sent is gone
        new_res.setdefault("status", "confirmed")
        new_res.setdefault("eventType", ev.res.get("eventType", "default"))
        new_res.setdefault("reminders", {"useDefault": True})
        return self._apply(cal, ev, new_res, body.get("sequence"))

    def delete_event(self, principal: str, calendar_id: str, event_id: str, if_match: str | None) -> None:
        cal = self.calendar(calendar_id, principal, "write")
        stored = cal.events.get(event_id)
        if stored is not None and stored.removed and self._instance(cal, event_id) is None:
            raise GoogleError(410, "deleted")
        ev, new = self._existing(cal, event_id)  # an occurrence: a cancelled exception is made
        if ev.res["status"] == "cancelled":
            raise GoogleError(410, "deleted")
        self._check_if_match(ev, if_match)
        ev.res["status"] = "cancelled"
        self._stamp(ev.res)
        ev.seq = self._next_seq()
        if new:
            cal.events[event_id] = ev
        if ev.is_master:
            for exc in self._exceptions(cal, event_id):  # the whole series goes
                self._remove(exc)

    # -- admin -------------------------------------------------------------------------------
    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        created: list[str] = []
        if "seed" in body:
            # The generated firm's Workspace accounts: each employee has a primary calendar.
            from sandbox.firm import generate_firm

            firm = generate_firm(
                int(body["seed"]), employees=int(body.get("employees", 10)), appointments_per_employee=0, parties=0
            )
            for employee in firm.employees:
                self.calendar("primary", employee["email"], "read")
                created.append(employee["email"])
        for spec in body.get("calendars") or []:
            owner = spec.get("owner") or "anonymous"
            cid = spec.get("id")
            if cid and cid in self.calendars:
                raise GoogleError(409, "duplicate", f"calendar {cid} exists")
            res = self.insert_calendar(owner, spec, cid)
            for rule in spec.get("acl") or []:
                self.insert_acl(owner, res["id"], rule)
            created.append(res["id"])
        count = 0
        for cid, events in (body.get("events") or {}).items():
            cal = self.calendars.get(cid)
            if cal is None:
                raise GoogleError(404, "notFound", f"seed: calendar {cid} does not exist")
            for event in events:
                self.insert_event(cal.owner, cid, event, seeded=True)
                count += 1
        return {"calendars": created, "events": count}

    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "seq": self.seq,
            "sync_generation": self.generation,
            "calendars": [
                {
                    **cal.resource(),
                    "owner": cal.owner,
                    "acl": [copy.deepcopy(r) for r in cal.acl.values()],
                    "events": [
                        self.render(ev, cal.time_zone) for ev in sorted(cal.events.values(), key=lambda e: e.order)
                    ],
                }
                for cal in self.calendars.values()
            ],
        }
