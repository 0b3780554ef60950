"""The generated firm is deterministic and contains every kind of appointment the sync must handle."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sandbox.firm import generate_firm

START = date(2025, 3, 1)
BERLIN = ZoneInfo("Europe/Berlin")
TERMIN_KEYS = {
    "frNr",
    "text",
    "notiz",
    "ort",
    "kuerzel",
    "anwalt",
    "datum",
    "uhrzeitVon",
    "datumBis",
    "uhrzeitBis",
    "abwesenheit",
    "privat",
    "dauertermin",
    "turnus",
    "turnusArt",
    "erinnerung",
    "erinnerungsDatum",
    "nr",
    "azRubrum",
    "zuletztGeaendertAm",
}
DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def _dt(value: str) -> datetime:
    assert DT.match(value), value
    return datetime.fromisoformat(value)


def test_same_seed_same_firm_other_seed_other_firm() -> None:
    first = generate_firm(7, start=START).to_json()
    assert generate_firm(7, start=START).to_json() == first
    assert generate_firm(8, start=START).to_json() != first
    assert generate_firm(7, start=START + timedelta(days=1)).to_json() != first


def test_employees() -> None:
    firm = generate_firm(3, employees=12, start=START)
    codes = [e["kuerzel"] for e in firm.employees]
    assert len(codes) == 12 and len(set(codes)) == 12
    for employee in firm.employees:
        assert re.fullmatch(r"[A-Z]{2,4}", employee["kuerzel"])
        assert employee["email"] == f"{employee['kuerzel'].lower()}@kanzlei.example"
        assert employee["vorname"] and employee["name"]
    assert [e["aktiv"] for e in firm.employees].count(False) == 1
    assert all(e["aktiv"] for e in generate_firm(3, employees=4, start=START).employees)


def _kinds(appointment: dict) -> set[str]:
    kinds = set()
    begin, end = _dt(appointment["datum"]), _dt(appointment["datumBis"])
    if appointment["frNr"] < 0:
        kinds.add("negative")
    if appointment["privat"] == 1:
        kinds.add("private")
    if appointment["dauertermin"] == 1:
        kinds.add({1: "daily", 2: "weekly", 3: "monthly", 4: "yearly"}[appointment["turnusArt"]])
        if end.year == 2037:
            kinds.add("open_ended")
        if begin.replace(tzinfo=BERLIN).utcoffset() != end.replace(tzinfo=BERLIN).utcoffset():
            kinds.add("dst_crossing")
    elif appointment["abwesenheit"] == 1:
        assert appointment["datumBis"].endswith("T23:59:00")  # stored one minute early
        kinds.add("allday_multi" if end.date() > begin.date() else "allday")
    return kinds


def test_appointments_shape_window_and_special_kinds() -> None:
    firm = generate_firm(11, employees=6, appointments_per_employee=20, start=START)
    codes = {e["kuerzel"] for e in firm.employees}
    frnrs = [a["frNr"] for a in firm.appointments]
    assert len(frnrs) == len(set(frnrs))
    for appointment in firm.appointments:
        assert set(appointment) == TERMIN_KEYS
        assert isinstance(appointment["frNr"], int) and appointment["frNr"] != 0
        begin = _dt(appointment["datum"]).date()
        assert START - timedelta(days=20) <= begin <= START + timedelta(days=300)
        assert appointment["uhrzeitVon"] == appointment["datum"][11:]
        assert appointment["kuerzel"] == appointment["anwalt"]
        assert appointment["dauertermin"] in (0, 1) and appointment["privat"] in (0, 1)
        assert appointment["abwesenheit"] in (0, 1)
        if appointment["dauertermin"]:
            assert appointment["turnus"] >= 1 and appointment["turnusArt"] in (1, 2, 3, 4)
        assert appointment["text"]
    wanted = {
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "open_ended",
        "dst_crossing",
        "allday",
        "allday_multi",
        "private",
        "negative",
    }
    for code in codes:
        own = [a for a in firm.appointments if a["kuerzel"] == code]
        assert len(own) == 20
        found = set().union(*(_kinds(a) for a in own))
        assert wanted <= found, (code, wanted - found)
        assert sum(a["frNr"] < 0 for a in own) == 1
    shared = {a["kuerzel"] for a in firm.appointments if a["kuerzel"] not in codes}
    assert shared == {"", "ALLE", "Allgemein"}
    assert any(" ./. " in a["azRubrum"] and a["nr"] for a in firm.appointments)


@pytest.mark.parametrize("start", [date(2025, 3, 1), date(2025, 9, 15), date(2026, 1, 10)])
def test_dst_crossing_series_for_any_start(start: date) -> None:
    firm = generate_firm(5, employees=2, start=start)
    for employee in firm.employees:
        own = [a for a in firm.appointments if a["kuerzel"] == employee["kuerzel"]]
        assert any("dst_crossing" in _kinds(a) for a in own)


def test_parties() -> None:
    firm = generate_firm(2, parties=40, start=START)
    assert len(firm.parties) == 40
    ids = [p["id"] for p in firm.parties]
    assert len(set(ids)) == 40 and all(re.fullmatch(r"[0-9a-f]{17}", i) for i in ids)
    persons = [p for p in firm.parties if p["vorname"]]
    companies = [p for p in firm.parties if not p["vorname"]]
    assert persons and companies
    for party in firm.parties:
        for key in (
            "name",
            "anrede",
            "rechtsform",
            "strasse",
            "plz",
            "ort",
            "land",
            "emailAddress",
            "phoneNumber",
            "createdAt",
            "modifiedAt",
        ):
            assert party[key], (key, party)
        assert party["versionNumber"] == 1
        assert "@" in party["emailAddress"]
        assert party["modifiedAt"] >= party["createdAt"]
    assert all(p["anrede"] in ("Herr", "Frau") for p in persons)
    assert all(p["anrede"] == "Firma" and p["rechtsform"] != "Natürliche Person" for p in companies)
