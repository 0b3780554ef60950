"""Mapping Advoware ⇄ canonical ⇄ Google: round trips and Advoware's quirks (docs/external-apis.md)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.calendar_engine import (
    Appointment,
    Recurrence,
    event_id,
    fingerprint,
    from_advoware,
    from_google,
    to_advoware,
    to_google,
)
from include.calendar_engine.mapping_advoware import NotRepresentable, is_shared_pool
from include.calendar_engine.mapping_google import ANONYMOUS_TITLE
from include.calendar_engine.marker import KEY_EMPLOYEE, KEY_FRNR, KEY_ORIGIN
from include.calendar_engine.models import Freq, Matter, Unsupported
from include.calendar_engine.timeutil import BERLIN

EMP = "AB"

# Strategies shared with test_sync_recurrence.py and test_sync_convergence.py.
TEXT = st.text(alphabet="abcXYZ äöüß-./:", min_size=0, max_size=12).map(str.strip)
SLOT_MINUTES = st.integers(min_value=0, max_value=95).map(lambda q: q * 15)


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


@st.composite
def advoware_termin(
    draw: Any,
    *,
    frnr: int | None = None,
    kuerzel: str = "AB",
    day_range: tuple[date, date] = (date(2024, 1, 1), date(2027, 12, 31)),
    series: bool | None = None,
    max_series_days: int = 900,
) -> dict[str, Any]:
    """A raw Termin in the shape the API (and the sandbox firm) uses."""
    day = draw(st.dates(min_value=day_range[0], max_value=day_range[1]))
    all_day = draw(st.booleans())
    is_series = draw(st.booleans()) if series is None else series
    start_min = draw(SLOT_MINUTES)
    von = time(start_min // 60, start_min % 60)
    raw: dict[str, Any] = {
        "frNr": frnr if frnr is not None else draw(st.integers(min_value=1, max_value=10**6)),
        "text": draw(TEXT),
        "notiz": draw(TEXT),
        "ort": draw(TEXT),
        "kuerzel": kuerzel,
        "anwalt": kuerzel,
        "privat": int(draw(st.booleans())),
        "abwesenheit": int(all_day),
        "dauertermin": 0,
        "turnus": 0,
        "turnusArt": 0,
        "erinnerung": 0,
        "erinnerungsDatum": None,
        "nr": None,
        "azRubrum": "",
        "zuletztGeaendertAm": "2024-01-01T10:00:00.000000",
    }
    if draw(st.booleans()):
        raw["nr"] = draw(st.integers(min_value=1, max_value=99999))
        raw["azRubrum"] = draw(TEXT)
    if all_day:
        last = day if is_series else day + timedelta(days=draw(st.integers(min_value=0, max_value=14)))
        raw.update(
            datum=_fmt(datetime.combine(day, time(0))),
            uhrzeitVon="00:00:00",
            datumBis=_fmt(datetime.combine(last, time(23, 59))),
            uhrzeitBis="23:59:00",
        )
        begin = datetime.combine(day, time(0))
    else:
        minutes = draw(st.integers(min_value=15, max_value=(23 * 60 + 59) if is_series else 3 * 24 * 60))
        begin = datetime.combine(day, von)
        finish = begin + timedelta(minutes=minutes)
        raw.update(
            datum=_fmt(begin),
            uhrzeitVon=von.strftime("%H:%M:%S"),
            datumBis=_fmt(finish),
            uhrzeitBis=finish.strftime("%H:%M:%S"),
        )
    if is_series:
        open_ended = draw(st.integers(0, 4)) == 0
        length = timedelta(days=draw(st.integers(0, max_series_days)))
        until = date(2037, 12, 31) if open_ended else day + length
        raw.update(
            dauertermin=1,
            turnus=draw(st.integers(1, 4)),
            turnusArt=draw(st.integers(1, 4)),
            datumBis=f"{until.isoformat()}T{raw['uhrzeitBis']}",
        )
    if draw(st.booleans()):
        raw["erinnerung"] = 1
        ahead = timedelta(minutes=draw(st.sampled_from([0, 15, 30, 60, 1440])))
        raw["erinnerungsDatum"] = _fmt(begin - ahead)
    return raw


def _termin(**kw):
    base = {
        "frNr": 101,
        "text": "Besprechung",
        "notiz": "",
        "ort": "",
        "kuerzel": EMP,
        "anwalt": EMP,
        "abwesenheit": 0,
        "privat": 0,
        "dauertermin": 0,
        "turnus": 0,
        "turnusArt": 0,
        "erinnerung": 0,
        "erinnerungsDatum": None,
        "nr": None,
        "azRubrum": "",
        "zuletztGeaendertAm": "2025-01-01T08:00:00",
    }
    base.update(kw)
    return base


@settings(max_examples=150, deadline=None)
@given(advoware_termin())
def test_round_trip_advoware_canonical_google(raw):
    canon = from_advoware(raw, EMP)
    body = to_google(canon, employee=EMP, frnr=canon.frnr)
    back = from_google(body)
    assert isinstance(back, Appointment), back
    assert back.content() == canon.content()
    assert fingerprint(back) == fingerprint(canon)
    again = from_advoware(to_advoware(back, EMP), EMP)
    assert again.content() == canon.content()
    # The Termin body carries the mapped fields exactly like the raw one did.
    termin = to_advoware(canon, EMP)
    for key in ("text", "notiz", "ort"):
        assert termin[key] == raw[key].strip()
    for key in ("abwesenheit", "privat", "dauertermin", "erinnerung", "turnus", "turnusArt"):
        assert int(termin[key]) == int(raw[key]), key
    assert termin["datum"][:10] == raw["datum"][:10]


def test_timed_appointment_with_offsets_and_reminder():
    raw = _termin(
        datum="2025-03-30T09:00:00",
        uhrzeitVon="09:00:00",
        datumBis="2025-03-30T10:30:00",
        uhrzeitBis="10:30:00",
        erinnerung=1,
        erinnerungsDatum="2025-03-30T08:45:00",
        nr=50001,
        azRubrum="Müller ./. Schmidt",
        notiz="Akte lesen",
        ort="Saal 1",
    )
    canon = from_advoware(raw, EMP)
    assert canon.start == datetime(2025, 3, 30, 9, 0, tzinfo=BERLIN)
    assert canon.start.utcoffset().total_seconds() == 7200  # CEST on the DST day
    assert canon.reminder_minutes == 15
    body = to_google(canon, employee=EMP, frnr=101)
    assert body["start"] == {"dateTime": "2025-03-30T09:00:00+02:00", "timeZone": "Europe/Berlin"}
    assert body["end"]["dateTime"] == "2025-03-30T10:30:00+02:00"
    assert body["reminders"] == {"useDefault": False, "overrides": [{"method": "popup", "minutes": 15}]}
    assert "50001" in body["description"] and body["description"].startswith("Akte lesen")
    props = body["extendedProperties"]["private"]
    assert props[KEY_FRNR] == "101" and props[KEY_ORIGIN] == "advoware" and props[KEY_EMPLOYEE] == EMP
    assert all(len(k) <= 44 and len(v) <= 1024 for k, v in props.items())
    back = from_google(body)
    assert back.matter == Matter("50001", "Müller ./. Schmidt") and back.note == "Akte lesen"
    assert to_advoware(back, EMP)["nr"] == 50001


def test_datum_without_time_uses_uhrzeit_von_else_nine():
    with_von = from_advoware(_termin(datum="2025-05-05", uhrzeitVon="14:15:00", uhrzeitBis="15:00:00"), EMP)
    assert (with_von.start.hour, with_von.start.minute) == (14, 15)
    assert (with_von.end.hour, with_von.end.minute) == (15, 0)
    midnight_datum = from_advoware(_termin(datum="2025-05-05T00:00:00", uhrzeitVon="11:00:00"), EMP)
    assert midnight_datum.start.hour == 11
    fallback = from_advoware(_termin(datum="2025-05-05"), EMP)
    assert (fallback.start.hour, fallback.start.minute) == (9, 0)
    assert (fallback.end - fallback.start).total_seconds() == 3600


def test_all_day_single_and_multi_day_exclusive_end():
    single = from_advoware(
        _termin(
            datum="2025-03-10T00:00:00",
            uhrzeitVon="00:00:00",
            datumBis="2025-03-10T23:59:00",
            uhrzeitBis="23:59:00",
            abwesenheit=1,
        ),
        EMP,
    )
    assert single.all_day and (single.start, single.end) == (date(2025, 3, 10), date(2025, 3, 11))
    multi = from_advoware(
        _termin(datum="2025-03-10T00:00:00", datumBis="2025-03-12T23:59:00", uhrzeitBis="23:59:00", abwesenheit=1), EMP
    )
    body = to_google(multi, employee=EMP, frnr=101)
    assert body["start"] == {"date": "2025-03-10"} and body["end"] == {"date": "2025-03-13"}
    termin = to_advoware(from_google(body), EMP)
    assert termin["abwesenheit"] == 1 and termin["datumBis"].startswith("2025-03-12")
    assert termin["uhrzeitBis"] == "23:59:00"


def test_private_maps_to_visibility_private_both_ways():
    canon = from_advoware(_termin(datum="2025-06-01T10:00:00", privat=1), EMP)
    body = to_google(canon, employee=EMP, frnr=101)
    assert body["visibility"] == "private"
    assert from_google({**body, "visibility": "confidential"}).private is True
    assert to_advoware(from_google(body), EMP)["privat"] == 1
    assert from_google({**body, "visibility": "default"}).private is False


def test_series_fields_and_open_ended_2037():
    raw = _termin(
        datum="2025-01-07T09:00:00",
        uhrzeitVon="09:00:00",
        datumBis="2037-12-31T10:00:00",
        uhrzeitBis="10:00:00",
        dauertermin=1,
        turnus=2,
        turnusArt=2,
    )
    canon = from_advoware(raw, EMP)
    assert canon.recurrence == Recurrence(Freq.WEEKLY, 2, None)
    assert (canon.end - canon.start).total_seconds() == 3600  # occurrence, not series end
    body = to_google(canon, employee=EMP, frnr=1)
    assert body["recurrence"] == ["RRULE:FREQ=WEEKLY;INTERVAL=2"]
    assert body["start"]["timeZone"] == "Europe/Berlin"
    termin = to_advoware(from_google(body), EMP)
    assert termin["datumBis"].startswith("2037-12-31") and termin["turnusArt"] == 2 and termin["turnus"] == 2
    # A Google rule with an UNTIL beyond 2037 reads back as open-ended as well.
    far = from_google({**body, "recurrence": ["RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20401231T000000Z"]})
    assert far.recurrence.until is None


def test_series_occurrence_over_2359_is_not_representable():
    canon = Appointment(
        start=datetime(2025, 1, 1, 9, tzinfo=BERLIN),
        end=datetime(2025, 1, 2, 10, tzinfo=BERLIN),
        recurrence=Recurrence(Freq.DAILY, 1, date(2025, 2, 1)),
    )
    with pytest.raises(NotRepresentable):
        to_advoware(canon, EMP)
    body = to_google(canon, employee=EMP, frnr=5)
    assert isinstance(from_google(body), Unsupported)


def test_event_id_is_base32hex_stable_and_distinct():
    a, b = event_id("AB", 1), event_id("AB", 2)
    assert a == event_id("AB", 1) and a != b and a != event_id("CD", 1)
    for value in (a, b, event_id("Allgemein", -7)):
        assert re.fullmatch(r"[a-v0-9]{5,1024}", value)
    assert len(a) == 52


def test_anonymize_hides_texts_and_matter():
    canon = from_advoware(
        _termin(
            datum="2025-06-01T10:00:00",
            text="Müller Scheidung",
            notiz="geheim",
            ort="Kanzlei",
            nr=7,
            azRubrum="Müller ./. Müller",
        ),
        EMP,
    )
    body = to_google(canon, employee=EMP, frnr=101, anonymize=True)
    assert body["summary"] == ANONYMOUS_TITLE and body["description"] == "" and body["location"] == ""
    assert "Müller" not in repr(body)
    assert body["start"]["dateTime"].startswith("2025-06-01T10:00:00")


def test_special_and_shared_pool_flags():
    special = from_advoware(_termin(frNr=-3, datum="2025-06-01T10:00:00"), EMP)
    assert special.read_only and special.frnr == -3
    for code in ("", "ALLE", "Allgemein", None):
        assert is_shared_pool(_termin(kuerzel=code, anwalt=code))
    assert not is_shared_pool(_termin())


def test_fingerprint_ignores_stamps_ids_and_etags():
    raw = _termin(datum="2025-06-01T10:00:00")
    one = from_advoware(raw, EMP)
    two = from_advoware({**raw, "zuletztGeaendertAm": "2026-01-01T00:00:00", "frNr": 999}, EMP)
    assert fingerprint(one) == fingerprint(two)
    body = to_google(one, employee=EMP, frnr=101)
    noisy = {**body, "etag": '"x"', "updated": "2026-01-01T00:00:00Z", "id": "zzz00", "sequence": 4}
    assert fingerprint(from_google(noisy)) == fingerprint(one)
    assert fingerprint(from_advoware({**raw, "text": "Anders"}, EMP)) != fingerprint(one)
