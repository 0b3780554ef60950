"""The sync's marker in a Google event's private extended properties: THE one definition of its keys,
origins, writers and readers for the project. Pure.

An event written by the sync carries the Advoware id it mirrors (`advowareFrNr`), the employee and
where the appointment was made (`syncOrigin`: "advoware" or "google"), so a lost hub can be rebuilt
from Google alone and a person's own events are told apart from ours. The matter keys ride along
(written by the mapping, kept by an update). Google drops keys over 44 characters silently.
"""

from __future__ import annotations

from typing import Any

from include.calendar_engine.ids import normalize_employee

KEY_FRNR = "advowareFrNr"
KEY_EMPLOYEE = "advowareEmployee"
KEY_ORIGIN = "syncOrigin"
KEY_MATTER_NR = "advowareAkteNr"
KEY_MATTER_RUBRUM = "advowareAzRubrum"
OUR_KEYS = frozenset({KEY_FRNR, KEY_EMPLOYEE, KEY_ORIGIN, KEY_MATTER_NR, KEY_MATTER_RUBRUM})
ORIGIN_ADVOWARE, ORIGIN_GOOGLE = "advoware", "google"


def marker_properties(employee: str, frnr: int | None, origin: str) -> dict[str, str]:
    """The marker as the mapping writes it (the employee as given; no frNr yet for a new Google event)."""
    props = {KEY_ORIGIN: origin, KEY_EMPLOYEE: employee}
    if frnr is not None:
        props[KEY_FRNR] = str(frnr)
    return props


def advoware_properties(employee: str, frnr: int | str) -> dict[str, str]:
    """The marker of an event written from Advoware, with the employee's one spelling."""
    return {KEY_FRNR: str(int(frnr)), KEY_EMPLOYEE: normalize_employee(employee), KEY_ORIGIN: ORIGIN_ADVOWARE}


def with_advoware_properties(body: dict[str, Any], employee: str, frnr: int | str) -> dict[str, Any]:
    """A copy of `body` whose extendedProperties.private holds the Advoware id and origin marker."""
    out = dict(body)
    ext = dict(out.get("extendedProperties") or {})
    private = dict(ext.get("private") or {})
    private.update(advoware_properties(employee, frnr))
    ext["private"] = private
    out["extendedProperties"] = ext
    return out


def private_properties(event: dict[str, Any]) -> dict[str, str]:
    return dict(((event.get("extendedProperties") or {}).get("private")) or {})


def marker_of(event: dict[str, Any]) -> tuple[str | None, int | None, str | None]:
    """(employee, frnr, origin) from our private properties; Nones when the event has no marker."""
    props = private_properties(event)
    raw = props.get(KEY_FRNR)
    try:
        frnr = int(raw) if raw not in (None, "") else None
    except ValueError:
        frnr = None
    return props.get(KEY_EMPLOYEE), frnr, props.get(KEY_ORIGIN)


def frnr_of(event: dict[str, Any]) -> int | None:
    """The Advoware frNr an event carries in its marker, if any."""
    return marker_of(event)[1]
