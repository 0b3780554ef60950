"""EspoCRM CBeteiligte → Advoware Beteiligte: fields, communications, fingerprint (pure, no I/O)."""

from __future__ import annotations

import pytest

from include.parties import mapping
from include.parties.mapping import Komm, MappingError, map_party

PERSON = {
    "id": "65a1b2c3d4e5f6071",
    "name": "Schmidt",
    "vorname": "Anna",
    "anrede": "Frau",
    "titel": "Dr.",
    "rechtsform": "Natürliche Person",
    "geburtsdatum": "1980-05-17",
    "strasse": "Hauptstr. 1",
    "plz": "10115",
    "ort": "Berlin",
    "land": "Deutschland",
    "handelsregisterNummer": None,
    "registergericht": None,
    "emailAddress": "anna.schmidt@mail.example",
    "phoneNumber": "+49 151 1234567",
    "createdAt": "2025-01-01 10:00:00",
    "modifiedAt": "2025-02-01 10:00:00",
    "versionNumber": 3,
}


def test_fields_are_mapped_and_normalised() -> None:
    m = map_party({**PERSON, "ort": "  Berlin ", "titel": "", "geburtsdatum": "1980-05-17"})
    assert m.body["name"] == "Schmidt" and m.body["vorname"] == "Anna"
    assert m.body["ort"] == "Berlin"  # stripped
    assert m.body["titel"] is None  # empty means absent
    assert m.body["geburtsdatum"] == "1980-05-17"
    assert set(m.body) == set(mapping.PARTY_FIELDS)  # nothing else (no ids, no timestamps)


def test_email_and_phone_become_communications() -> None:
    m = map_party(PERSON)
    assert m.komms == (
        Komm(mapping.KOMM_TEL_GESCH, "+49 151 1234567"),
        Komm(mapping.KOMM_MAIL_GESCH, "anna.schmidt@mail.example"),
    )
    body = mapping.komm_body(m.komms[1])
    assert body == {"kommKz": 4, "tlf": "anna.schmidt@mail.example", "bemerkung": mapping.SYNC_MARK, "online": True}


def test_espocrm_multi_value_data_with_types() -> None:
    m = map_party(
        {
            **PERSON,
            "emailAddressData": [
                {"emailAddress": "a@x.example", "primary": True},
                {"emailAddress": "old@x.example", "invalid": True},
            ],
            "phoneNumberData": [
                {"phoneNumber": "+49 30 1", "type": "Office"},
                {"phoneNumber": "+49 170 2", "type": "Mobile"},
                {"phoneNumber": "+49 30 3", "type": "Fax"},
            ],
        }
    )
    assert set(m.komms) == {Komm(4, "a@x.example"), Komm(1, "+49 30 1"), Komm(3, "+49 170 2"), Komm(2, "+49 30 3")}


def test_fingerprint_ignores_timestamps_versions_and_write_back_fields() -> None:
    base = map_party(PERSON).fingerprint
    echo = {
        **PERSON,
        "modifiedAt": "2026-01-01 00:00:00",
        "versionNumber": 9,
        mapping.FIELD_BET_NR: 1234,
        mapping.FIELD_SYNC_STATUS: "synced",
        mapping.FIELD_LAST_SYNC: "2026-01-01 00:00:00",
    }
    assert map_party(echo).fingerprint == base


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Schmid"},
        {"ort": "Hamburg"},
        {"emailAddress": "b@x.example"},
        {"phoneNumber": None},
        {"geburtsdatum": "1980-05-18"},
    ],
)
def test_fingerprint_moves_with_every_mapped_change(change: dict) -> None:
    assert map_party({**PERSON, **change}).fingerprint != map_party(PERSON).fingerprint


def test_a_value_changing_back_has_the_first_fingerprint() -> None:
    a = map_party(PERSON).fingerprint
    b = map_party({**PERSON, "ort": "Köln"}).fingerprint
    assert a != b and map_party({**PERSON, "ort": "Berlin"}).fingerprint == a


def test_no_name_cannot_be_mapped() -> None:
    with pytest.raises(MappingError):
        map_party({**PERSON, "name": "  "})


def test_advoware_record_reads_into_the_same_shape() -> None:
    m = map_party(PERSON)
    advoware = {
        **m.body,
        "betNr": 7,
        "rowId": "r1",
        "geaendertAm": "2026-01-01T10:00:00",
        "geburtsdatum": "1980-05-17T00:00:00",
        "kommunikation": [
            {"id": 1, "kommKz": 4, "tlf": "anna.schmidt@mail.example", "bemerkung": mapping.SYNC_MARK},
            {"id": 2, "kommKz": 1, "tlf": "+49 151 1234567", "bemerkung": mapping.SYNC_MARK},
            {"id": 3, "kommKz": 1, "tlf": "+49 30 999", "bemerkung": "vom Sekretariat"},
        ],
    }
    body, komms = mapping.advoware_content(advoware)
    assert mapping.changed_fields(m.body, body) == {}
    assert komms == m.komms  # the staff's own entry (no sync mark) is not ours
    assert mapping.fingerprint(body, komms) == m.fingerprint
    assert mapping.changed_fields({**m.body, "ort": "Bonn"}, body) == {"ort": "Bonn"}
