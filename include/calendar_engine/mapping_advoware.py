"""Advoware Termin ⇄ canonical `Appointment`.

Reading (`from_advoware`), the quirks of Advoware (docs/external-apis.md):
- start: the time in `datum` when it carries one (not 00:00), else `uhrzeitVon`, else the 00:00 of
  `datum` if it had a time part, else 09:00 (the seed's fallback).
- end: `datumBis` (date) + `uhrzeitBis`, else the time in `datumBis`; no end time → start + 1 h.
- `abwesenheit=1`: all-day; Advoware's 23:59 end becomes Google's exclusive next day
  (10.–12.03. → start 2025-03-10, end 2025-03-13).
- `dauertermin=1`: `datumBis` is the END OF THE SERIES, the occurrence ends on the start day at
  `uhrzeitBis` (or on the next day if that time is earlier: at most 23:59 h); `turnus` interval,
  `turnusArt` 1–4 daily/weekly/monthly/yearly; `datumBis` in 2037 = open-ended.
- reminder: `erinnerung=1` and `erinnerungsDatum` → minutes before the start.
- negative `frNr`: special appointment, `read_only=True` (never written back).

Writing (`to_advoware`) produces the Termin body in the same shape the API returns (camelCase,
local times without offset); `from_advoware(to_advoware(a)) == a` on the mapped fields.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from include.calendar_engine.models import (
    MAX_SERIES_OCCURRENCE,
    OPEN_ENDED_DATE,
    OPEN_ENDED_YEAR,
    TURNUS_ART,
    TURNUS_ART_OF,
    Appointment,
    Matter,
    Recurrence,
    clean_text,
)
from include.calendar_engine.timeutil import fmt_local, local, normalize, parse_local_stamp, parse_time, split_advoware

DEFAULT_START = time(9, 0)
ALL_DAY_END = time(23, 59)
SHARED_POOL_CODES = frozenset({"", "ALLE", "ALLGEMEIN"})


class NotRepresentable(ValueError):
    """The canonical appointment cannot be stored as an Advoware Termin."""


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "ja", "yes"}
    return bool(value)


def owner_code(raw: dict[str, Any]) -> str:
    value = raw.get("kuerzel")
    if value is None:
        value = raw.get("anwalt")
    return clean_text(value)


def is_shared_pool(raw: dict[str, Any]) -> bool:
    return owner_code(raw).upper() in SHARED_POOL_CODES


def frnr_of(raw: dict[str, Any]) -> int | None:
    value = raw.get("frNr", raw.get("frnr"))
    return None if value in (None, "") else int(value)


def changed_at_of(raw: dict[str, Any]) -> str | None:
    value = raw.get("zuletztGeaendertAm")
    return None if value in (None, "") else str(value)


def from_advoware(raw: dict[str, Any], employee: str | None = None) -> Appointment:
    """Raises ValueError when `datum` is missing or unreadable."""
    day, day_time = split_advoware(raw.get("datum"))
    if day is None:
        raise ValueError("Termin without a readable datum")
    frnr = frnr_of(raw)
    all_day = _flag(raw.get("abwesenheit"))
    series = _flag(raw.get("dauertermin"))
    bis_day, bis_time = split_advoware(raw.get("datumBis"))
    bis_day = bis_day or day
    end_time = parse_time(raw.get("uhrzeitBis")) or (bis_time if bis_time and bis_time != time(0) else None)

    recurrence = None
    if series:
        freq = TURNUS_ART.get(int(raw.get("turnusArt") or 0))
        if freq is None:
            raise ValueError("series with an unknown turnusArt")
        # A series "ending" before it starts still has its first occurrence.
        until = None if bis_day.year >= OPEN_ENDED_YEAR else max(bis_day, day)
        recurrence = Recurrence(freq=freq, interval=max(1, int(raw.get("turnus") or 1)), until=until)

    start: datetime | date
    end: datetime | date
    if all_day:
        start = day
        end = day + timedelta(days=1) if series else max(bis_day, day) + timedelta(days=1)
    else:
        if day_time is not None and day_time != time(0):
            start_time = day_time
        else:
            start_time = parse_time(raw.get("uhrzeitVon")) or day_time or DEFAULT_START
        start = local(day, start_time)
        if series:
            end = local(day, end_time) if end_time is not None else start + timedelta(hours=1)
            if end <= start:
                end = local(day + timedelta(days=1), end_time or start_time)
                if end - start > MAX_SERIES_OCCURRENCE:
                    end = start + MAX_SERIES_OCCURRENCE
        elif end_time is None:
            end = local(bis_day, start_time) + timedelta(hours=1)
        else:
            end = local(bis_day, end_time)
        end = max(normalize(end), start)

    reminder = None
    if _flag(raw.get("erinnerung")):
        at = parse_local_stamp(raw.get("erinnerungsDatum"))
        begin = local(start, time(0)) if all_day else start
        if at is not None and at <= begin:
            reminder = int((begin - at).total_seconds() // 60)

    nr = raw.get("nr")
    rubrum = clean_text(raw.get("azRubrum"))
    matter = Matter(nr=clean_text(nr), az_rubrum=rubrum) if (nr not in (None, "") or rubrum) else None

    return Appointment(
        start=start,
        end=end,
        all_day=all_day,
        title=clean_text(raw.get("text")),
        note=clean_text(raw.get("notiz")),
        location=clean_text(raw.get("ort")),
        private=_flag(raw.get("privat")),
        recurrence=recurrence,
        matter=matter,
        reminder_minutes=reminder,
        frnr=frnr,
        employee=employee or owner_code(raw) or None,
        read_only=frnr is not None and frnr < 0,
    )


def _nr_out(nr: str) -> int | str:
    # Advoware's matter number is an integer; keep anything else as it came.
    return int(nr) if nr.isdigit() and str(int(nr)) == nr else nr


def to_advoware(appt: Appointment, employee: str, *, owner: str | None = None) -> dict[str, Any]:
    """The Termin body for POST (no frNr) or PUT (with frNr). `owner` keeps a shared-pool owner."""
    kuerzel = employee if owner is None else owner
    body: dict[str, Any] = {
        "text": appt.title,
        "notiz": appt.note,
        "ort": appt.location,
        "kuerzel": kuerzel,
        "anwalt": kuerzel,
        "privat": int(appt.private),
        "abwesenheit": int(appt.all_day),
        "dauertermin": 0,
        "turnus": 0,
        "turnusArt": 0,
        "erinnerung": 0,
        "erinnerungsDatum": None,
        "nr": _nr_out(appt.matter.nr) if appt.matter and appt.matter.nr else None,
        "azRubrum": appt.matter.az_rubrum if appt.matter else "",
    }
    if appt.frnr is not None:
        body["frNr"] = appt.frnr
    rec = appt.recurrence
    if appt.all_day:
        first: date = appt.start
        last: date = appt.end - timedelta(days=1)
        if rec is not None and last != first:
            raise NotRepresentable("all-day series occurrence longer than one day")
        begin = local(first, time(0))
        body.update(
            datum=f"{first.isoformat()}T00:00:00",
            uhrzeitVon="00:00:00",
            datumBis=f"{last.isoformat()}T23:59:00",
            uhrzeitBis="23:59:00",
        )
    else:
        begin = normalize(appt.start)  # type: ignore[arg-type]
        finish = normalize(appt.end)  # type: ignore[arg-type]
        if rec is not None and not timedelta(0) <= finish - begin <= MAX_SERIES_OCCURRENCE:
            raise NotRepresentable("series occurrence longer than 23:59 h")
        body.update(
            datum=fmt_local(begin),
            uhrzeitVon=begin.strftime("%H:%M:%S"),
            datumBis=fmt_local(finish),
            uhrzeitBis=finish.strftime("%H:%M:%S"),
        )
    if rec is not None:
        until = rec.until or OPEN_ENDED_DATE
        end_clock = body["uhrzeitBis"]
        body.update(
            dauertermin=1,
            turnus=rec.interval,
            turnusArt=TURNUS_ART_OF[rec.freq],
            datumBis=f"{until.isoformat()}T{end_clock}",
        )
    if appt.reminder_minutes is not None:
        remind_at = begin - timedelta(minutes=appt.reminder_minutes)
        body.update(erinnerung=1, erinnerungsDatum=fmt_local(remind_at))
    return body
