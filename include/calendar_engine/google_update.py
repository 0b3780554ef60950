"""The body of a Google update (PUT): the event as Google holds it now, with only the mapped fields
replaced by the sync's version. Pure.

A PUT replaces the whole event, so a body built from the mapping alone would drop what a person added
in Google that Advoware has no field for: attendees, the video call (conferenceData), attachments,
the colour, free/busy (transparency), a tentative status, the guests' permissions, the source, other
apps' private and all shared extended properties. They are carried over unchanged. (The executor
sends the PUT with conferenceDataVersion=1 and supportsAttachments=true, so Google takes the
conference and the attachments as they are carried, and with sendUpdates=none, so no guest is mailed.)

A mapped field is replaced only when its meaning differs: a start at the same instant keeps the
person's time zone, a "confidential" event stays confidential when Advoware says private, a
reminder list whose first popup is the same keeps its other entries.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from include.calendar_engine.mapping_google import reminder_of, when_value
from include.calendar_engine.marker import OUR_KEYS
from include.calendar_engine.models import clean_text
from include.calendar_engine.timeutil import normalize

# set by Google, not by a writer (sending them back is at best ignored; a stale sequence is refused)
SERVER_FIELDS = frozenset(
    {"kind", "etag", "created", "updated", "htmlLink", "iCalUID", "creator", "organizer", "hangoutLink", "sequence"}
)


def _set(out: dict[str, Any], name: str, value: Any) -> None:
    if value in (None, "", []):
        out.pop(name, None)
    else:
        out[name] = copy.deepcopy(value)


def _private(visibility: Any) -> bool:
    return visibility in ("private", "confidential")


def _same_when(current: Any, wanted: Any) -> bool:
    """The same date, the same instant, or the same Berlin wall time: Advoware cannot tell the two
    02:30 of the night summer time ends apart, so its 02:30 leaves Google's choice alone."""
    try:
        have, want = when_value(current or {}), when_value(wanted or {})
    except ValueError:
        return False
    if have is None or type(have) is not type(want):
        return False
    if isinstance(have, datetime) and isinstance(want, datetime):
        return have == want or normalize(have).replace(tzinfo=None) == normalize(want).replace(tzinfo=None)
    return have == want


def onto_current(current: dict[str, Any] | None, body: dict[str, Any]) -> dict[str, Any]:
    """`body` (the mapping's full event) put onto `current` (as just read from Google)."""
    if not current:
        return copy.deepcopy(body)
    out = {k: copy.deepcopy(v) for k, v in current.items() if k not in SERVER_FIELDS}
    if "id" in body:
        out["id"] = body["id"]
    for name in ("summary", "description", "location"):
        if clean_text(current.get(name)) != clean_text(body.get(name)):
            _set(out, name, body.get(name))
    series = bool(body.get("recurrence"))
    zone_kept = not series or all(
        (current.get(k) or {}).get("timeZone") == (body.get(k) or {}).get("timeZone") for k in ("start", "end")
    )
    for name in ("start", "end"):  # the same instant keeps the person's time zone (a series: its rule's)
        if not (zone_kept and _same_when(current.get(name), body.get(name))):
            out[name] = copy.deepcopy(body[name])
    _set(out, "recurrence", body.get("recurrence"))
    if _private(current.get("visibility")) != _private(body.get("visibility")):
        out["visibility"] = body.get("visibility", "default")
    if reminder_of(current) != reminder_of(body) or "reminders" not in current:
        out["reminders"] = copy.deepcopy(body.get("reminders"))
    ext = copy.deepcopy(current.get("extendedProperties") or {})
    theirs = {k: v for k, v in (ext.get("private") or {}).items() if k not in OUR_KEYS}
    ext["private"] = theirs | dict((body.get("extendedProperties") or {}).get("private") or {})
    out["extendedProperties"] = ext
    if current.get("status") == "cancelled":  # writing a deleted event restores it
        out["status"] = "confirmed"
    return out
