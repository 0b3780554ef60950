"""Advoware series ⇄ RFC 5545 RRULE.

Writing: `RRULE:FREQ=<f>;INTERVAL=<turnus>[;UNTIL=<u>]`. `UNTIL` takes the value type of the start:
for a timed series the UTC instant of the END of `datumBis` in Berlin (23:59:59 local, so the series
end may sit in another DST offset than the first occurrence: 2025-12-24 → 20251224T225959Z,
2025-07-01 → 20250701T215959Z); for an all-day series a DATE (20251224). An open-ended series
(Advoware year 2037) gets NO `UNTIL`; reading, an `UNTIL` in 2037 or later also means open-ended.

Reading a Google rule uses `dateutil.rrule.rrulestr` (the library, not hand parsing). What Advoware
cannot hold is an `Unsupported` result: EXDATE/RDATE/EXRULE, several rules, COUNT, BYSETPOS,
sub-daily frequencies, and any BY* part that changes the occurrences (a BYDAY list, a weekday that
differs from the start's, BYMONTHDAY lists, ...). A BY* part that only restates the start (weekly
`BYDAY=TU` for a Tuesday start) is harmless: we compare the rule's occurrences with the
occurrences of the plain rule we would write, and accept only when they are identical.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import islice

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

from include.calendar_engine.models import OPEN_ENDED_YEAR, Freq, Recurrence, Unsupported
from include.calendar_engine.timeutil import BERLIN, normalize

_DATEUTIL_FREQ = {YEARLY: Freq.YEARLY, MONTHLY: Freq.MONTHLY, WEEKLY: Freq.WEEKLY, DAILY: Freq.DAILY}
# How many occurrences to compare for an open-ended rule; finite rules are compared whole.
_COMPARE_OPEN = 400
_COMPARE_MAX = 20_000


def until_value(until: date, *, all_day: bool) -> str:
    if all_day:
        return until.strftime("%Y%m%d")
    end_of_day = datetime.combine(until, time(23, 59, 59)).replace(tzinfo=BERLIN)
    return end_of_day.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def to_rrule(rec: Recurrence, *, all_day: bool) -> str:
    parts = [f"FREQ={rec.freq}", f"INTERVAL={rec.interval}"]
    if rec.until is not None and rec.until.year < OPEN_ENDED_YEAR:
        parts.append(f"UNTIL={until_value(rec.until, all_day=all_day)}")
    return "RRULE:" + ";".join(parts)


def dtstart_of(start: datetime | date, *, all_day: bool) -> datetime:
    """dateutil wants a datetime: naive midnight for all-day, aware Berlin wall time for timed."""
    if all_day:
        return datetime.combine(start, time(0))
    return normalize(start)  # type: ignore[arg-type]


def _parse(line: str, dtstart: datetime) -> rrule:
    try:
        return rrulestr(line, dtstart=dtstart)
    except ValueError:
        if dtstart.tzinfo is None:
            raise
        # A floating (local) UNTIL with an aware start: read the rule in Berlin wall time instead.
        return rrulestr(line, dtstart=dtstart.replace(tzinfo=None))


def _until_date(value: datetime) -> date:
    if value.tzinfo is None:
        return value.date()
    return value.astimezone(BERLIN).date()


def _occurrences(rule: rrule, finite: bool) -> list[datetime]:
    return list(islice(rule, _COMPARE_MAX if finite else _COMPARE_OPEN))


def _same(a: list[datetime], b: list[datetime]) -> bool:
    if len(a) != len(b):
        return False
    # Compare wall times: one side may be naive (floating) and the other aware.
    return all(x.replace(tzinfo=None) == y.replace(tzinfo=None) for x, y in zip(a, b, strict=True))


def from_google_recurrence(lines: list[str], start: datetime | date, *, all_day: bool) -> Recurrence | Unsupported:
    rules = [ln.strip() for ln in lines if ln.strip().upper().startswith("RRULE:")]
    others = [
        ln.strip().split(":", 1)[0].split(";", 1)[0].upper()
        for ln in lines
        if ln.strip() and not ln.strip().upper().startswith("RRULE:")
    ]
    if others:
        return Unsupported(f"recurrence lines Advoware cannot hold: {','.join(sorted(set(others)))}")
    if len(rules) != 1:
        return Unsupported("several RRULEs" if rules else "no RRULE")
    dtstart = dtstart_of(start, all_day=all_day)
    try:
        rule = _parse(rules[0], dtstart)
    except (ValueError, TypeError) as exc:
        return Unsupported(f"unparseable RRULE ({type(exc).__name__})")
    # dateutil keeps the parsed parts only on private attributes; there is no public accessor.
    if rule._count is not None:
        return Unsupported("COUNT")
    if rule._bysetpos:
        return Unsupported("BYSETPOS")
    freq = _DATEUTIL_FREQ.get(rule._freq)
    if freq is None:
        return Unsupported("sub-daily frequency")
    interval = int(rule._interval)
    raw_until = rule._until
    theirs = _occurrences(rule, finite=raw_until is not None)
    if not theirs:
        return Unsupported("rule without occurrences")
    candidates: list[date | None] = [None]
    if raw_until is not None:
        # The UNTIL date itself, else the date of the last occurrence (a rule ending before the
        # last occurrence's time on that day): both describe the same series in Advoware terms.
        candidates = [_until_date(raw_until), _until_date(theirs[-1])]
    for until in candidates:
        open_ended = until is None or until.year >= OPEN_ENDED_YEAR
        rec = Recurrence(freq=freq, interval=interval, until=None if open_ended else until)
        ours = _parse(to_rrule(rec, all_day=all_day), dtstart)
        if open_ended:
            n = min(len(theirs), _COMPARE_OPEN)
            same = _same(theirs[:n], list(islice(ours, n)))
        else:
            same = _same(theirs, _occurrences(ours, finite=True))
        if same:
            return rec
    return Unsupported("BY* pattern Advoware cannot hold")


def expand(rec: Recurrence, start: datetime | date, *, all_day: bool, limit: int = 1000) -> list[datetime]:
    """Occurrence starts of a canonical rule, via dateutil (used to report and in tests)."""
    dtstart = dtstart_of(start, all_day=all_day)
    rule = _parse(to_rrule(rec, all_day=all_day), dtstart)
    return list(islice(rule, limit))


def occurrence_limit_ok(duration: timedelta, *, all_day: bool) -> bool:
    """Advoware: a series occurrence lasts at most 23:59 h (all-day: exactly one day)."""
    if all_day:
        return duration == timedelta(days=1)
    return timedelta(0) <= duration <= timedelta(hours=23, minutes=59)
