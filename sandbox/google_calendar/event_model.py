"""Event resources: id rules, start/end validation, extended-property limits, patch merge, rendering.

Pure functions over plain dicts; the store decides when to call them.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import rrule

from .errors import GoogleError, invalid, required

EVENT_ID_RE = re.compile(r"^[a-v0-9]{5,1024}$")  # base32hex, lowercase (RFC 2938 3.1.2)
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|z|[+-]\d{2}:\d{2})$")
MAX_PROPERTY_KEY = 44
MAX_PROPERTY_VALUE = 1024

# Fields the server owns: ignored when a client sends them on insert/patch/update.
READ_ONLY = frozenset(
    {
        "kind",
        "etag",
        "htmlLink",
        "created",
        "updated",
        "creator",
        "organizer",
        "iCalUID",
        "id",
        "hangoutLink",
        "recurringEventId",
        "originalStartTime",
    }  # an instance's identity is immutable
)
ENUMS: dict[str, tuple[str, ...]] = {
    "status": ("confirmed", "tentative", "cancelled"),
    "transparency": ("opaque", "transparent"),
    "visibility": ("default", "public", "private", "confidential"),
    "eventType": ("default", "birthday", "focusTime", "outOfOffice", "workingLocation"),
}
SEQUENCE_MESSAGE = (
    "Invalid sequence value. The specified sequence number is below the current sequence "
    "number of the resource. Re-fetch the resource and use its sequence number on the "
    "following request."
)


def new_event_id() -> str:
    """A server-made id: 26 characters of lowercase base32hex, like Google's."""
    return base64.b32hexencode(secrets.token_bytes(16)).decode().lower().rstrip("=")


def check_event_id(event_id: Any) -> str:
    if not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id):
        raise invalid("Invalid resource id value.")
    return event_id


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise KeyError(name) from exc


def valid_zone(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        zone(name)
    except KeyError:
        return False
    return True


def parse_rfc3339(value: str, param: str) -> datetime:
    """A query-parameter timestamp: RFC 3339 with a mandatory offset, else 400 badRequest."""
    if not isinstance(value, str) or not RFC3339_RE.match(value):
        raise GoogleError(400, "badRequest", "Bad Request", location=param, location_type="parameter")
    return datetime.fromisoformat(value.replace("z", "Z"))


def rfc3339_utc(ts: datetime) -> str:
    """`updated`/`created` style: UTC with milliseconds and Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def clean_properties(ext: Any) -> Any:
    """Apply Google's silent limits: keys over 44 characters dropped, values over 1024 truncated.

    A None value survives (in a patch it deletes the key).
    """
    if not isinstance(ext, dict):
        return ext
    out: dict[str, Any] = {}
    for kind, props in ext.items():
        if not isinstance(props, dict):
            out[kind] = props
            continue
        cleaned: dict[str, Any] = {}
        for key, value in props.items():
            if len(str(key)) > MAX_PROPERTY_KEY:
                continue
            if value is not None:
                value = str(value)[:MAX_PROPERTY_VALUE]
            cleaned[str(key)] = value
        out[kind] = cleaned
    return out


def writable(body: dict[str, Any]) -> dict[str, Any]:
    """The part of a client body the client may set."""
    out = {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY}
    if "extendedProperties" in out:
        out["extendedProperties"] = clean_properties(out["extendedProperties"])
    return out


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Google patch semantics: objects merge recursively, arrays and scalars replace, null deletes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        elif isinstance(value, dict):
            target[key] = merge_patch({}, value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return value


class When:
    """A parsed start or end: all-day (`day`) or timed (`instant`)."""

    def __init__(self, stored: dict[str, Any], instant: datetime, day: date | None) -> None:
        self.stored = stored
        self.instant = instant
        self.day = day


def parse_when(value: Any, which: str, calendar_tz: str) -> When:
    if not isinstance(value, dict) or not (value.get("date") or value.get("dateTime")):
        raise required(f"Missing {which} time.")
    tz_name = value.get("timeZone")
    if tz_name is not None and not valid_zone(tz_name):
        raise invalid(f"Invalid time zone definition for {which} time.")
    if value.get("date") and value.get("dateTime"):
        raise invalid(f"Invalid {which} time.")
    if value.get("date"):
        try:
            day = date.fromisoformat(str(value["date"]))
        except ValueError as exc:
            raise invalid(f"Invalid {which} time.") from exc
        stored = {"date": day.isoformat()}
        if tz_name:
            stored["timeZone"] = tz_name
        instant = datetime(day.year, day.month, day.day, tzinfo=zone(calendar_tz))
        return When(stored, instant, day)
    raw = str(value["dateTime"])
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise invalid(f"Invalid {which} time.") from exc
    if parsed.tzinfo is None:
        if not tz_name:
            raise required(f"Missing time zone definition for {which} time.")
        parsed = parsed.replace(tzinfo=zone(tz_name))
    stored = {"dateTime": parsed.astimezone(UTC).isoformat()}
    if tz_name:
        stored["timeZone"] = tz_name
    return When(stored, parsed.astimezone(UTC), None)


def _parses(line: str, dtstart: datetime) -> bool:
    try:  # syntax only
        rrule.rrulestr(line.split(":", 1)[1], dtstart=dtstart)
    except (ValueError, IndexError):
        return False
    return True


def check_recurrence(lines: Any, start: When) -> list[str] | None:
    if lines is None:
        return None
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise invalid("Invalid recurrence rule.")
    starts = (start.instant.replace(tzinfo=None), start.instant)  # UNTIL may be floating or UTC
    for line in lines:
        name = re.split(r"[:;]", line, maxsplit=1)[0].upper()
        if name not in ("RRULE", "EXRULE", "RDATE", "EXDATE"):
            raise invalid("Invalid recurrence rule.")
        if name in ("RRULE", "EXRULE") and not any(_parses(line, dtstart) for dtstart in starts):
            raise invalid("Invalid recurrence rule.")
    return list(lines)


def check_event(res: dict[str, Any], calendar_tz: str) -> tuple[When, When]:
    """Validate a complete (insert/update/merged patch) event; returns its start and end."""
    for field, allowed in ENUMS.items():
        if field in res and res[field] not in allowed:
            raise invalid(f"Invalid value for: {field}")
    if "start" not in res:
        raise required("Missing start time.")
    if "end" not in res:
        raise required("Missing end time.")
    start = parse_when(res["start"], "start", calendar_tz)
    end = parse_when(res["end"], "end", calendar_tz)
    if (start.day is None) != (end.day is None):
        raise GoogleError(400, "invalid", "Start and end times must either both be date or both be dateTime.")
    if end.instant < start.instant or (start.day is not None and end.day == start.day):
        raise GoogleError(
            400,
            "timeRangeEmpty",
            "The specified time range is empty.",
            location="end",
            location_type="parameter",
        )
    recurrence = check_recurrence(res.get("recurrence"), start)
    if recurrence and start.day is None:
        if "timeZone" not in start.stored:
            raise required("Missing time zone definition for start time.")
        if "timeZone" not in end.stored:
            raise required("Missing time zone definition for end time.")
    for kind in ("private", "shared"):
        props = (res.get("extendedProperties") or {}).get(kind)
        if props is not None and not isinstance(props, dict):
            raise invalid(f"Invalid value for: extendedProperties.{kind}")
    seq = res.get("sequence", 0)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise invalid("Invalid sequence value.")
    return start, end


def render_when(stored: dict[str, Any], out_tz: str) -> dict[str, Any]:
    """Google renders timed values in the calendar's (or the request's) time zone."""
    if "date" in stored:
        return dict(stored)
    instant = datetime.fromisoformat(stored["dateTime"]).astimezone(zone(out_tz))
    text = instant.replace(microsecond=0).isoformat()
    if text.endswith("+00:00") and out_tz in ("UTC", "Etc/UTC", "GMT"):
        text = text[:-6] + "Z"
    out = {"dateTime": text}
    if "timeZone" in stored:
        out["timeZone"] = stored["timeZone"]
    return out


def overlaps(
    start: When,
    end: When,
    recurrence: list[str] | None,
    time_min: datetime | None,
    time_max: datetime | None,
    calendar_tz: str,
) -> bool:
    """timeMin is an exclusive bound on the END, timeMax an exclusive bound on the START.

    A recurring event matches when one of its occurrences does.
    """
    if not recurrence:
        return (time_min is None or end.instant > time_min) and (time_max is None or start.instant < time_max)
    duration = end.instant - start.instant
    tz: tzinfo = zone(start.stored.get("timeZone") or calendar_tz)
    first = start.instant.astimezone(tz)
    if start.day is not None:
        first = datetime(start.day.year, start.day.month, start.day.day, tzinfo=zone(calendar_tz))
    try:
        rules = rrule.rrulestr("\n".join(recurrence), dtstart=first, forceset=True)
        probe = (time_min - duration) if time_min is not None else first - timedelta(seconds=1)
        occurrence = rules.after(probe, inc=False)
    except (ValueError, TypeError):  # a rule dateutil cannot expand: treat the series as endless
        return time_max is None or start.instant < time_max
    if occurrence is None:
        return False
    return time_max is None or occurrence < time_max
