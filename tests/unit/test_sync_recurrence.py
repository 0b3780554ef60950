"""Every generated RRULE, expanded with dateutil as Google would (in the event's timeZone), must give
exactly the occurrences Advoware's fields describe; rules Advoware cannot hold are reported."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings

from include.calendar_engine import Appointment, from_advoware, from_google, to_advoware, to_google
from include.calendar_engine.models import Freq, Recurrence, Unsupported
from include.calendar_engine.planner import plan_sync
from include.calendar_engine.policy import Policy, Window
from tests.unit.test_sync_mapping import advoware_termin

BERLIN = ZoneInfo("Europe/Berlin")
EMP = "AB"
OPEN_LIMIT = 150


def advoware_occurrences(raw: dict[str, Any], limit: int = 5000) -> list[datetime | date]:
    """Occurrence starts straight from datum/uhrzeitVon/turnus/turnusArt/datumBis (no engine code).

    Assumption (not confirmed by the vendor): a monthly/yearly series skips months/years without its
    day of month (31st, 29 Feb), like RFC 5545.
    """
    first = date.fromisoformat(raw["datum"][:10])
    clock = time.fromisoformat(raw["uhrzeitVon"])
    until = date.fromisoformat(raw["datumBis"][:10])
    open_ended = until.year >= 2037
    step, art, all_day = int(raw["turnus"]), int(raw["turnusArt"]), bool(raw["abwesenheit"])
    out: list[datetime | date] = []
    k = 0
    while len(out) < limit:
        if art == 1:
            day: date | None = first + timedelta(days=k * step)
        elif art == 2:
            day = first + timedelta(weeks=k * step)
        elif art == 3:
            months = first.month - 1 + k * step
            try:
                day = date(first.year + months // 12, months % 12 + 1, first.day)
            except ValueError:
                day = None
        else:
            try:
                day = date(first.year + k * step, first.month, first.day)
            except ValueError:
                day = None
        k += 1
        if day is None:
            continue
        if not open_ended and day > until:
            break
        out.append(day if all_day else datetime.combine(day, clock).replace(tzinfo=BERLIN))
    return out


def google_occurrences(body: dict[str, Any], limit: int) -> list[datetime | date]:
    """Expand the event as Google does: RRULE from the start, wall clock in the event's timeZone."""
    (line,) = body["recurrence"]
    if "date" in body["start"]:
        dtstart = datetime.combine(date.fromisoformat(body["start"]["date"]), time(0))
        return [o.date() for o in islice(rrulestr(line, dtstart=dtstart), limit)]
    zone = ZoneInfo(body["start"]["timeZone"])
    dtstart = datetime.fromisoformat(body["start"]["dateTime"]).astimezone(zone)
    return list(islice(rrulestr(line, dtstart=dtstart), limit))


def assert_same(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        if isinstance(a, datetime):
            # same instant AND same Berlin wall clock (DST-correct)
            assert a.astimezone(UTC) == b.astimezone(UTC), (a, b)
            assert a.replace(tzinfo=None) == b.astimezone(BERLIN).replace(tzinfo=None)
        else:
            assert a == b


def check(raw: dict[str, Any]) -> dict[str, Any]:
    body = to_google(from_advoware(raw, EMP), employee=EMP, frnr=int(raw["frNr"]))
    open_ended = raw["datumBis"].startswith("2037")
    limit = OPEN_LIMIT if open_ended else 5000
    expected = advoware_occurrences(raw, limit)
    assert_same(expected, google_occurrences(body, limit))
    return body


def _series(datum: str, von: str, bis: str, datum_bis: str, turnus: int, art: int, all_day: int = 0) -> dict:
    return {
        "frNr": 7,
        "text": "Jour fixe",
        "kuerzel": EMP,
        "datum": f"{datum}T{von}",
        "uhrzeitVon": von,
        "datumBis": f"{datum_bis}T{bis}",
        "uhrzeitBis": bis,
        "abwesenheit": all_day,
        "privat": 0,
        "dauertermin": 1,
        "turnus": turnus,
        "turnusArt": art,
    }


@settings(max_examples=150, deadline=None)
@given(advoware_termin(series=True))
def test_every_generated_rrule_matches_advoware_occurrences(raw):
    body = check(raw)
    # ... and reading the rule back gives the same Advoware fields.
    termin = to_advoware(from_google(body), EMP)
    assert (termin["turnus"], termin["turnusArt"], termin["datumBis"][:10]) == (
        raw["turnus"],
        raw["turnusArt"],
        raw["datumBis"][:10],
    )


def test_seed_example_daily_every_third_day_timed_and_all_day():
    timed = check(_series("2025-12-01", "09:00:00", "10:00:00", "2025-12-24", 3, 1))
    assert timed["recurrence"] == ["RRULE:FREQ=DAILY;INTERVAL=3;UNTIL=20251224T225959Z"]
    all_day = check(_series("2025-12-01", "00:00:00", "23:59:00", "2025-12-24", 3, 1, all_day=1))
    assert all_day["recurrence"] == ["RRULE:FREQ=DAILY;INTERVAL=3;UNTIL=20251224"]
    assert all_day["start"]["date"] == "2025-12-01" and all_day["end"]["date"] == "2025-12-02"


def test_weekly_series_across_spring_dst_keeps_wall_clock_and_ends_in_summer_offset():
    raw = _series("2025-03-04", "09:00:00", "10:00:00", "2025-04-15", 1, 2)
    body = check(raw)
    assert body["recurrence"] == ["RRULE:FREQ=WEEKLY;INTERVAL=1;UNTIL=20250415T215959Z"]  # CEST end
    occ = google_occurrences(body, 100)
    assert len(occ) == 7 and occ[-1].date() == date(2025, 4, 15)
    assert {o.astimezone(UTC).hour for o in occ if o.date() < date(2025, 3, 30)} == {8}
    assert {o.astimezone(UTC).hour for o in occ if o.date() > date(2025, 3, 30)} == {7}


def test_autumn_dst_late_evening_occurrence_on_the_last_day_is_included():
    raw = _series("2025-10-20", "23:30:00", "23:45:00", "2025-10-28", 1, 1)
    body = check(raw)
    assert body["recurrence"][0].endswith("UNTIL=20251028T225959Z")  # CET end, start was CEST
    assert google_occurrences(body, 100)[-1].date() == date(2025, 10, 28)


def test_monthly_on_the_31st_and_yearly_on_29_february():
    check(_series("2025-01-31", "08:00:00", "09:00:00", "2026-12-31", 1, 3))
    check(_series("2024-02-29", "08:00:00", "09:00:00", "2036-03-01", 1, 4))


def test_open_ended_all_day_yearly_series():
    body = check(_series("2025-06-01", "00:00:00", "23:59:00", "2037-12-31", 1, 4, all_day=1))
    assert body["recurrence"] == ["RRULE:FREQ=YEARLY;INTERVAL=1"]


def _google(rule: list[str], **extra: Any) -> dict[str, Any]:
    # 2025-01-07 is a Tuesday.
    return {
        "id": "g1",
        "summary": "x",
        "start": {"dateTime": "2025-01-07T09:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2025-01-07T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": rule,
        **extra,
    }


@pytest.mark.parametrize(
    "rule",
    [
        ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"],
        ["RRULE:FREQ=WEEKLY;BYDAY=FR"],
        ["RRULE:FREQ=DAILY;COUNT=5"],
        ["RRULE:FREQ=MONTHLY;BYDAY=TU;BYSETPOS=-1"],
        ["RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15"],
        ["RRULE:FREQ=MONTHLY;BYDAY=1TU"],
        ["RRULE:FREQ=HOURLY;INTERVAL=2"],
        ["RRULE:FREQ=WEEKLY", "EXDATE;TZID=Europe/Berlin:20250114T090000"],
        ["RRULE:FREQ=WEEKLY", "RDATE;TZID=Europe/Berlin:20250116T090000"],
        ["RRULE:FREQ=WEEKLY", "RRULE:FREQ=MONTHLY"],
        ["EXRULE:FREQ=MONTHLY"],
    ],
)
def test_rules_advoware_cannot_hold_are_unsupported(rule):
    result = from_google(_google(rule))
    assert isinstance(result, Unsupported), rule
    assert result.reason


def test_instance_exception_is_unsupported_and_reported_not_flattened():
    instance = _google([], recurringEventId="master1", originalStartTime={"dateTime": "2025-01-14T09:00:00+01:00"})
    del instance["recurrence"]
    assert isinstance(from_google(instance), Unsupported)
    plan = plan_sync(
        [],
        [],
        [instance, _google(["RRULE:FREQ=DAILY;COUNT=3"], id="g2")],
        True,
        Policy(),
        Window(date(2025, 1, 1), date(2025, 12, 31)),
        employee=EMP,
    )
    assert plan.is_empty()
    # the COUNT rule is reported; an exception of a series nobody knows (not listed, not linked) is
    # nothing the sync acts on or reports (tests/unit/test_sync_series_exceptions.py: known series)
    assert [(r.kind, r.google_event_id) for r in plan.reports] == [("unsupported_rule", "g2")]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("RRULE:FREQ=WEEKLY;BYDAY=TU", Recurrence(Freq.WEEKLY, 1, None)),  # restates the start's weekday
        # UNTIL between occurrences: its own date; UNTIL on the last day but before the occurrence's
        # time (07:00Z = 08:00 Berlin < 09:00): the series really ends one occurrence earlier.
        ("RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20250325T080000Z", Recurrence(Freq.WEEKLY, 2, date(2025, 3, 25))),
        ("RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20250318T070000Z", Recurrence(Freq.WEEKLY, 2, date(2025, 3, 4))),
        ("RRULE:FREQ=MONTHLY;BYMONTHDAY=7;UNTIL=20250607T215959Z", Recurrence(Freq.MONTHLY, 1, date(2025, 6, 7))),
        ("RRULE:FREQ=YEARLY", Recurrence(Freq.YEARLY, 1, None)),
    ],
)
def test_google_rules_advoware_can_hold(rule, expected):
    result = from_google(_google([rule]))
    assert isinstance(result, Appointment), result
    assert result.recurrence == expected
