"""One party EspoCRM → Advoware against both sandboxes, the real hub and Redis: create, update, echo,
delete (kept / hard), communications (403 on delete), 409s on both sides, write protection, an
interrupted create, and the drain loop's ack / retry / dead letter."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from include.hub import dead_letters
from include.hub.db import Hub, connect
from include.parties import mapping
from include.parties.drain import drain, hub_dead_letter_sink
from include.parties.sync import PartySync
from tests.party_helpers import (
    CrmUser,
    advoware_parties,
    advoware_writes,
    links,
    make_queue,
    make_sync,
    total_party_writes,
)

PARTY = {
    "name": "Schmidt",
    "vorname": "Anna",
    "anrede": "Frau",
    "rechtsform": "Natürliche Person",
    "strasse": "Hauptstr. 1",
    "plz": "10115",
    "ort": "Berlin",
    "land": "Deutschland",
    "emailAddress": "anna.schmidt@mail.example",
    "phoneNumber": "+49 151 1234567",
}


@pytest.fixture
def user(espocrm_url: str) -> CrmUser:
    return CrmUser(espocrm_url)


@pytest.fixture
def syncer(advoware_url: str, espocrm_url: str, redis_url: str, hub: str) -> Iterator[PartySync]:
    s = make_sync(advoware_url, espocrm_url, redis_url, hub)
    yield s
    s.close()


def komms_of(party: dict) -> set[tuple[int, str]]:
    return {(k["kommKz"], k["tlf"]) for k in party["kommunikation"]}


def test_create_writes_party_and_communications_and_writes_back(
    syncer: PartySync, user: CrmUser, advoware_url: str, hub: str
) -> None:
    rec = user.create(**PARTY)
    out = syncer.sync_party(rec["id"])
    assert out.action == "created" and out.bet_nr is not None
    party = advoware_parties(advoware_url)[out.bet_nr]
    assert (party["name"], party["vorname"], party["ort"]) == ("Schmidt", "Anna", "Berlin")
    assert komms_of(party) == {(4, "anna.schmidt@mail.example"), (1, "+49 151 1234567")}
    assert advoware_writes(advoware_url) == {"Beteiligte.create": 1, "Kommunikationen.create": 2}
    back = user.record(rec["id"])
    assert back[mapping.FIELD_BET_NR] == out.bet_nr
    assert back[mapping.FIELD_SYNC_STATUS] == "synced" and back[mapping.FIELD_LAST_SYNC]
    link = links(hub)[rec["id"]]
    assert (link["bet_nr"], link["status"]) == (out.bet_nr, "linked")
    assert link["fingerprint"] == mapping.map_party(back).fingerprint
    assert link["espo_version"] == back["versionNumber"]
    with psycopg.connect(hub) as conn:
        audited = conn.execute("SELECT count(*) FROM write_audit WHERE actor = 'beteiligte_sync'").fetchone()[0]
    assert audited == 3  # one audit row per Advoware write


def test_update_sends_only_the_difference_and_keeps_the_bet_nr(
    syncer: PartySync, user: CrmUser, advoware_url: str
) -> None:
    rec = user.create(**PARTY)
    bet_nr = syncer.sync_party(rec["id"]).bet_nr
    user.update(rec["id"], ort="Hamburg", emailAddress="anna@neu.example")
    out = syncer.sync_party(rec["id"])
    assert (out.action, out.bet_nr, out.advoware_writes) == ("updated", bet_nr, 2)
    party = advoware_parties(advoware_url)[bet_nr]
    assert party["ort"] == "Hamburg"
    assert komms_of(party) == {(4, "anna@neu.example"), (1, "+49 151 1234567")}  # e-mail entry reused
    assert len(advoware_parties(advoware_url)) == 1
    assert advoware_writes(advoware_url) == {
        "Beteiligte.create": 1,
        "Kommunikationen.create": 2,
        "Beteiligte.update": 1,
        "Kommunikationen.update": 1,
    }


def test_own_write_back_echo_does_nothing(
    syncer: PartySync, user: CrmUser, advoware_url: str, espocrm_url: str
) -> None:
    rec = user.create(**PARTY)
    syncer.sync_party(rec["id"])
    version = user.record(rec["id"])["versionNumber"]
    espo_writes = httpx.get(f"{espocrm_url}/_sandbox/stats").json()["writes"]
    before = total_party_writes(advoware_url)
    for _ in range(3):  # the echo webhook of our write-back, delivered three times
        assert syncer.sync_party(rec["id"]).action == "unchanged"
    assert total_party_writes(advoware_url) == before
    assert user.record(rec["id"])["versionNumber"] == version  # no second write-back either
    assert httpx.get(f"{espocrm_url}/_sandbox/stats").json()["writes"] == espo_writes


def test_delete_keeps_the_advoware_record_and_unlinks(
    syncer: PartySync, user: CrmUser, advoware_url: str, hub: str
) -> None:
    rec = user.create(**PARTY)
    bet_nr = syncer.sync_party(rec["id"]).bet_nr
    user.delete(rec["id"])
    out = syncer.sync_party(rec["id"])
    assert (out.action, out.bet_nr, out.advoware_writes) == ("unlinked", bet_nr, 0)
    assert any("kept" in n for n in out.notes)
    assert bet_nr in advoware_parties(advoware_url)
    assert links(hub)[rec["id"]]["status"] == "unlinked"
    assert syncer.sync_party(rec["id"]).action == "unchanged"  # a repeated delete delivery


def test_hard_delete_by_setting(advoware_url: str, espocrm_url: str, redis_url: str, hub: str, user: CrmUser) -> None:
    s = make_sync(advoware_url, espocrm_url, redis_url, hub, hard_delete=True)
    try:
        rec = user.create(**PARTY)
        bet_nr = s.sync_party(rec["id"]).bet_nr
        user.delete(rec["id"])
        out = s.sync_party(rec["id"])
        assert (out.action, out.advoware_writes) == ("hard_deleted", 1)
        assert bet_nr not in advoware_parties(advoware_url)
        assert links(hub)[rec["id"]]["status"] == "deleted"
    finally:
        s.close()


def test_deleted_before_the_first_sync_never_reaches_advoware(
    syncer: PartySync, user: CrmUser, advoware_url: str
) -> None:
    rec = user.create(**PARTY)
    user.delete(rec["id"])
    assert syncer.sync_party(rec["id"]).action == "gone"
    assert advoware_parties(advoware_url) == {}


def test_communication_advoware_refuses_to_delete_is_left_and_reported(
    syncer: PartySync, user: CrmUser, advoware_url: str
) -> None:
    rec = user.create(**PARTY)
    bet_nr = syncer.sync_party(rec["id"]).bet_nr
    user.update(rec["id"], phoneNumber=None, ort="Potsdam")
    out = syncer.sync_party(rec["id"])
    assert out.action == "updated"
    assert any("403" in n for n in out.notes)
    party = advoware_parties(advoware_url)[bet_nr]
    assert party["ort"] == "Potsdam"  # the rest of the change went through
    assert (1, "+49 151 1234567") in komms_of(party)  # left in place


def test_staff_communications_are_never_touched(syncer: PartySync, user: CrmUser, advoware_url: str) -> None:
    rec = user.create(**PARTY)
    bet_nr = syncer.sync_party(rec["id"]).bet_nr
    staff = syncer.advoware.create_kommunikation(bet_nr, {"kommKz": 1, "tlf": "+49 30 555", "bemerkung": "Büro"})
    user.update(rec["id"], phoneNumber="+49 151 7654321")
    syncer.sync_party(rec["id"])
    by_id = {k["id"]: k for k in advoware_parties(advoware_url)[bet_nr]["kommunikation"]}
    assert by_id[staff["id"]]["tlf"] == "+49 30 555"
    assert (1, "+49 151 7654321") in komms_of(advoware_parties(advoware_url)[bet_nr])


def test_advoware_409_rereads_and_retries_once(syncer: PartySync, user: CrmUser, advoware_url: str) -> None:
    rec = user.create(**PARTY)
    bet_nr = syncer.sync_party(rec["id"]).bet_nr
    # someone edits the party in Advoware meanwhile: our rowId is stale
    current = syncer.advoware.get_beteiligter(bet_nr)
    syncer.advoware.update_beteiligter(bet_nr, {"rowId": current["rowId"], "titel": "Dr."})
    user.update(rec["id"], ort="Leipzig")
    httpx.post(
        f"{advoware_url}/_sandbox/faults", json={"faults": [{"match": "Beteiligte.update", "status": 409, "count": 1}]}
    ).raise_for_status()
    out = syncer.sync_party(rec["id"])
    assert out.action == "updated"
    party = advoware_parties(advoware_url)[bet_nr]
    assert (party["ort"], party["titel"]) == ("Leipzig", None)  # EspoCRM's state wins for synced fields
    stats = httpx.get(f"{advoware_url}/_sandbox/stats").json()
    assert stats["faults"] == {"Beteiligte.update": 1}


def test_two_409s_fail_the_party(syncer: PartySync, user: CrmUser, advoware_url: str) -> None:
    rec = user.create(**PARTY)
    syncer.sync_party(rec["id"])
    user.update(rec["id"], ort="Leipzig")
    httpx.post(
        f"{advoware_url}/_sandbox/faults", json={"faults": [{"match": "Beteiligte.update", "status": 409, "count": 2}]}
    ).raise_for_status()
    from include.advoware.errors import AdvowareConflict

    with pytest.raises(AdvowareConflict):
        syncer.sync_party(rec["id"])


def test_espocrm_version_conflict_on_write_back_syncs_again(
    syncer: PartySync, user: CrmUser, advoware_url: str, espocrm_url: str, hub: str
) -> None:
    rec = user.create(**PARTY)
    httpx.post(
        f"{espocrm_url}/_sandbox/faults", json={"faults": [{"match": "CBeteiligte.update", "status": 409, "count": 1}]}
    ).raise_for_status()
    out = syncer.sync_party(rec["id"])
    assert out.action == "created"
    assert user.record(rec["id"])[mapping.FIELD_SYNC_STATUS] == "synced"
    assert links(hub)[rec["id"]]["status"] == "linked"
    assert advoware_writes(advoware_url)["Beteiligte.create"] == 1  # the second pass wrote nothing new


def test_write_protection_sends_nothing_and_the_party_goes_round_again(
    advoware_url: str, espocrm_url: str, redis_url: str, hub: str, user: CrmUser
) -> None:
    protected = make_sync(advoware_url, espocrm_url, redis_url, hub, write_protection=True)
    rec = user.create(**PARTY)
    try:
        out = protected.sync_party(rec["id"])
        assert out.action == "write_protected"
        assert httpx.get(f"{advoware_url}/_sandbox/stats").json()["total_writes"] == 0
        assert user.record(rec["id"])[mapping.FIELD_SYNC_STATUS] == "write_protected"
        assert protected.store.write_protected_ids() == [rec["id"]]
        version = user.record(rec["id"])["versionNumber"]
        assert protected.sync_party(rec["id"]).action == "write_protected"
        assert user.record(rec["id"])["versionNumber"] == version  # status unchanged: no webhook loop
    finally:
        protected.close()
    free = make_sync(advoware_url, espocrm_url, redis_url, hub)
    try:
        assert free.sync_party(rec["id"]).action == "created"
        assert free.store.write_protected_ids() == []
    finally:
        free.close()


def test_interrupted_create_is_adopted_not_duplicated(syncer: PartySync, user: CrmUser, advoware_url: str) -> None:
    rec = user.create(**PARTY)
    mapped = mapping.map_party(user.record(rec["id"]))
    # what a worker killed right after its POST leaves behind: the intent, and the record in Advoware
    syncer.store.mark_create_pending(rec["id"], mapping.body_fingerprint(mapped.body))
    orphan = syncer.advoware.create_beteiligter(mapped.body)
    out = syncer.sync_party(rec["id"])
    assert out.bet_nr == orphan["betNr"]
    assert any("adopted" in n for n in out.notes)
    assert list(advoware_parties(advoware_url)) == [orphan["betNr"]]
    assert advoware_writes(advoware_url)["Beteiligte.create"] == 1


def interrupted_create(syncer: PartySync, user: CrmUser) -> tuple[str, int]:
    """A worker killed right after its POST: the intent in the hub, the record in Advoware, no link."""
    rec = user.create(**PARTY)
    mapped = mapping.map_party(user.record(rec["id"]))
    syncer.store.mark_create_pending(rec["id"], mapping.body_fingerprint(mapped.body))
    return rec["id"], int(syncer.advoware.create_beteiligter(mapped.body)["betNr"])


@pytest.mark.parametrize("change", [{"ort": "Potsdam"}, {"name": "Schmidt-Berg"}], ids=["address-changed", "renamed"])
def test_interrupted_create_is_adopted_after_the_party_changed(
    syncer: PartySync, user: CrmUser, advoware_url: str, change: dict
) -> None:
    # the soak's duplicate: the party was edited in EspoCRM before another worker took over the create
    espo_id, orphan = interrupted_create(syncer, user)
    user.update(espo_id, **change)
    out = syncer.sync_party(espo_id)
    assert (out.action, out.bet_nr) == ("updated", orphan)
    parties = advoware_parties(advoware_url)
    assert list(parties) == [orphan]
    assert all(parties[orphan][k] == v for k, v in change.items())
    assert advoware_writes(advoware_url)["Beteiligte.create"] == 1


def test_interrupted_create_of_a_party_deleted_meanwhile_is_kept_linked_as_unlinked(
    syncer: PartySync, user: CrmUser, advoware_url: str, hub: str
) -> None:
    # deleted in EspoCRM before the retry: the record Advoware got is kept like any deleted party's,
    # and the hub knows it (no Advoware record without a link)
    espo_id, orphan = interrupted_create(syncer, user)
    user.delete(espo_id)
    out = syncer.sync_party(espo_id)
    assert (out.action, out.bet_nr) == ("unlinked", orphan)
    assert links(hub)[espo_id]["bet_nr"] == orphan and links(hub)[espo_id]["status"] == "unlinked"
    assert list(advoware_parties(advoware_url)) == [orphan]


def test_drain_acks_retries_and_dead_letters(
    syncer: PartySync, user: CrmUser, advoware_url: str, espocrm_url: str, redis_url: str, hub: str
) -> None:
    queue = make_queue(redis_url, max_attempts=2)
    good = user.create(**PARTY)
    bad = user.create(**{**PARTY, "name": ""})  # Advoware needs a name: fails every time
    queue.enqueue([good["id"], bad["id"]], "create")
    sink = hub_dead_letter_sink(Hub(hub))
    first = drain(queue, syncer.sync_party, batch_size=10, dead_letter_sink=sink)
    assert (first.acked, first.retried, first.dead) == (1, 1, 0)
    assert first.actions["created"] == 1
    from tests.party_helpers import wait_for

    def again() -> bool:
        return drain(queue, syncer.sync_party, batch_size=10, dead_letter_sink=sink).dead == 1

    wait_for(again, timeout_s=10, interval_s=0.1)
    with connect(hub) as conn:
        letters = dead_letters.list_(conn, source="beteiligte_sync")
    assert [(d["entity_id"], d["attempts"]) for d in letters] == [(bad["id"], 2)]
    assert "MappingError" in letters[0]["reason"]
    assert queue.stats().pending == 0 and queue.stats().claimed == 0
    assert len(advoware_parties(advoware_url)) == 1
