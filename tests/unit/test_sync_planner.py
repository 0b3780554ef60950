"""Decision-table tests for `plan_sync`: one test (or parametrised case) per row of the table."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest

from include.calendar_engine import (
    HubLink,
    Plan,
    Policy,
    Window,
    event_id,
    fingerprint,
    from_advoware,
    from_google,
    plan_sync,
)
from include.calendar_engine.mapping_google import to_google

EMP = "AB"
WINDOW = Window(date(2025, 1, 1), date(2025, 12, 31))


def termin(frnr: int, day: str = "2025-06-02", text: str = "Besprechung", **kw: Any) -> dict[str, Any]:
    raw = {
        "frNr": frnr,
        "text": text,
        "notiz": "",
        "ort": "",
        "kuerzel": EMP,
        "anwalt": EMP,
        "datum": f"{day}T10:00:00",
        "uhrzeitVon": "10:00:00",
        "datumBis": f"{day}T11:00:00",
        "uhrzeitBis": "11:00:00",
        "abwesenheit": 0,
        "privat": 0,
        "dauertermin": 0,
        "turnus": 0,
        "turnusArt": 0,
        "erinnerung": 0,
        "erinnerungsDatum": None,
        "nr": None,
        "azRubrum": "",
        "zuletztGeaendertAm": "2025-01-10T08:00:00.000000",
    }
    raw.update(kw)
    return raw


def linked(raw: dict[str, Any]) -> tuple[HubLink, dict[str, Any]]:
    """A hub link plus the Google event exactly as a previous run left them."""
    appt = from_advoware(raw, EMP)
    event = {
        **to_google(appt, employee=EMP, frnr=raw["frNr"]),
        "status": "confirmed",
        "updated": "2025-01-10T07:00:00Z",
        "etag": '"1"',
    }
    first, last = appt.span()
    return HubLink(
        EMP,
        raw["frNr"],
        event["id"],
        fingerprint(appt),
        fingerprint(from_google(event)),
        raw["zuletztGeaendertAm"],
        event["updated"],
        span_start=first.isoformat(),
        span_end=last.isoformat(),
    ), event


def plan(links, adv, goog, complete=True, **policy: Any) -> Plan:
    return plan_sync(links, adv, goog, complete, Policy(**policy), WINDOW, employee=EMP)


def kinds(p: Plan) -> list[str]:
    return [a.kind for a in p.actions()]


def edited(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    out.update(fields)
    out["updated"] = "2025-02-01T12:00:00Z"
    return out


@pytest.mark.parametrize("complete", [True, False])
def test_unchanged_plans_nothing(complete):
    raw = termin(1)
    link, event = linked(raw)
    p = plan([link], [raw], [event] if complete else [], complete=complete)
    assert p.is_empty() and not p.reports and p.stop_reason is None
    # stamps are not content: a newer zuletztGeaendertAm/updated/etag alone plans nothing
    p = plan(
        [link],
        [{**raw, "zuletztGeaendertAm": "2025-03-01T00:00:00"}],
        [{**event, "etag": '"9"', "updated": "2025-03-01T00:00:00Z"}],
    )
    assert p.is_empty()


def test_advoware_changed_updates_google():
    raw = termin(1)
    link, event = linked(raw)
    new = {**raw, "text": "Verhandlung", "zuletztGeaendertAm": "2025-02-01T09:00:00"}
    p = plan([link], [new], [event])
    (act,) = p.phase4
    assert act.kind == "update_google" and act.google_event_id == link.google_event_id
    assert act.google_body["summary"] == "Verhandlung"
    assert act.advoware_fingerprint == fingerprint(from_advoware(new, EMP))
    assert act.google_fingerprint == fingerprint(from_google(act.google_body))
    assert act.advoware_changed_at == "2025-02-01T09:00:00"


def test_google_changed_updates_advoware():
    raw = termin(1)
    link, event = linked(raw)
    p = plan([link], [raw], [edited(event, summary="Verlegt", location="Saal 3")])
    (act,) = p.phase4
    assert act.kind == "update_advoware" and act.frnr == 1
    assert act.advoware_body["text"] == "Verlegt" and act.advoware_body["ort"] == "Saal 3"
    assert act.advoware_body["frNr"] == 1 and act.advoware_changed_at == raw["zuletztGeaendertAm"]


def test_google_change_under_write_protection_is_reverted_in_google():
    raw = termin(1)
    link, event = linked(raw)
    p = plan([link], [raw], [edited(event, summary="Verlegt")], write_protection=True)
    assert kinds(p) == ["update_google"] and p.phase4[0].google_body["summary"] == "Besprechung"
    assert [r.kind for r in p.reports] == ["write_protected_revert"]


def test_special_negative_frnr_is_never_written_back():
    raw = termin(-4)
    link, event = linked(raw)
    p = plan([link], [raw], [edited(event, summary="Verlegt")])
    assert kinds(p) == ["update_google"] and [r.kind for r in p.reports] == ["special_read_only"]
    p = plan([link], [raw], [{"id": event["id"], "status": "cancelled"}])
    assert kinds(p) == ["create_google"]


@pytest.mark.parametrize(
    ("policy", "stamp_a", "stamp_g", "expected"),
    [
        ("advoware_wins", "2025-02-02T10:00:00", "2025-02-03T10:00:00Z", "update_google"),
        ("google_wins", "2025-02-03T10:00:00", "2025-02-02T10:00:00Z", "update_advoware"),
        ("last_change_wins", "2025-02-02T10:00:00", "2025-02-03T10:00:00Z", "update_advoware"),
        ("last_change_wins", "2025-02-03T10:00:00", "2025-02-02T10:00:00Z", "update_google"),
    ],
)
def test_changed_on_both_sides_follows_conflict_policy(policy, stamp_a, stamp_g, expected):
    raw = termin(1)
    link, event = linked(raw)
    adv = {**raw, "text": "A-Seite", "zuletztGeaendertAm": stamp_a}
    goog = {**edited(event, summary="G-Seite"), "updated": stamp_g}
    p = plan([link], [adv], [goog], conflict_policy=policy)
    assert kinds(p) == [expected]
    act = p.phase4[0]
    title = act.google_body["summary"] if expected == "update_google" else act.advoware_body["text"]
    assert title == ("A-Seite" if expected == "update_google" else "G-Seite")


def test_google_wins_under_write_protection_reverts_instead():
    raw = termin(1)
    link, event = linked(raw)
    p = plan(
        [link],
        [{**raw, "text": "A"}],
        [edited(event, summary="G")],
        conflict_policy="google_wins",
        write_protection=True,
    )
    assert kinds(p) == ["update_google"] and p.phase4[0].google_body["summary"] == "A"


def test_both_changed_to_the_same_content_only_links():
    raw = termin(1)
    link, event = linked(raw)
    p = plan([link], [{**raw, "text": "Gleich"}], [edited(event, summary="Gleich")])
    assert kinds(p) == ["link"] and not hasattr(p.phase4[0], "google_body")  # a Link writes no body


@pytest.mark.parametrize("complete", [True, False])
def test_advoware_deleted_google_unchanged_deletes_in_google(complete):
    raw, other = termin(1), termin(2, day="2025-07-01")
    (link, event), (link2, event2) = linked(raw), linked(other)
    p = plan([link, link2], [other], [event, event2] if complete else [], complete=complete)
    (act,) = p.phase3
    assert (act.kind, act.frnr, act.confirm_absent) == ("delete_google", 1, "advoware")


def test_google_deleted_advoware_unchanged_deletes_in_advoware():
    raw = termin(1)
    link, event = linked(raw)
    p = plan([link], [raw], [{"id": event["id"], "status": "cancelled"}])
    (act,) = p.phase3
    assert (act.kind, act.frnr, act.confirm_absent) == ("delete_advoware", 1, None)
    assert act.advoware_changed_at == raw["zuletztGeaendertAm"]
    # absent from a full listing (not even a tombstone): delete only after confirming with Google
    link9, event9 = linked(termin(9))
    p = plan([link, link9], [raw, termin(9)], [event9])
    assert [(a.kind, a.confirm_absent) for a in p.phase3] == [("delete_advoware", "google")]


def test_google_deletion_under_write_protection_recreates_in_google():
    raw = termin(1)
    link, event = linked(raw)
    p = plan([link], [raw], [{"id": event["id"], "status": "cancelled"}], write_protection=True)
    assert kinds(p) == ["create_google"] and p.phase1[0].google_event_id == event["id"]
    assert [r.kind for r in p.reports] == ["write_protected_revert"]


def test_deleted_in_google_edited_in_advoware_recreates_google():
    raw = termin(1)
    link, event = linked(raw)
    p = plan([link], [{**raw, "text": "Neu"}], [{"id": event["id"], "status": "cancelled"}])
    assert kinds(p) == ["create_google"] and p.phase1[0].google_body["summary"] == "Neu"


def test_deleted_in_advoware_edited_in_google_recreates_in_advoware():
    raw, keep = termin(1), termin(2, day="2025-08-01")
    (link, event), (link2, event2) = linked(raw), linked(keep)
    p = plan([link, link2], [keep], [edited(event, summary="Neu"), event2])
    assert kinds(p) == ["create_advoware"]
    act = p.phase2[0]
    assert act.google_event_id == event["id"] and act.advoware_id is None and "frNr" not in act.advoware_body
    assert act.advoware_body["text"] == "Neu" and act.advoware_body["kuerzel"] == EMP
    # under write protection Advoware's deletion stands
    p = plan([link, link2], [keep], [edited(event, summary="Neu"), event2], write_protection=True)
    assert kinds(p) == ["delete_google"]


def test_deleted_on_both_sides_forgets_the_link():
    raw, keep = termin(1), termin(2)
    (link, event), (link2, event2) = linked(raw), linked(keep)
    p = plan([link, link2], [keep], [{"id": event["id"], "status": "cancelled"}, event2])
    assert kinds(p) == ["forget"]


def test_item_that_left_the_window_is_not_deleted():
    old, keep = termin(1, day="2024-11-02"), termin(2)
    (link, _), (link2, event2) = linked(old), linked(keep)
    # neither side lists it any more (outside the window): nothing happens
    assert plan([link, link2], [keep], [event2]).is_empty()
    assert plan([link, link2], [keep], [], complete=False).is_empty()
    # an open-ended series that started long ago is in the window: Advoware's absence is a deletion
    series = termin(3, day="2023-01-02", dauertermin=1, turnus=1, turnusArt=2, datumBis="2037-12-31T11:00:00")
    link3, event3 = linked(series)
    assert link3.span_end == "2037-12-31"
    assert kinds(plan([link2, link3], [keep], [event2, event3])) == ["delete_google"]


def test_a_side_returning_nothing_stops_the_run():
    raws = [termin(i) for i in range(1, 4)]
    pairs = [linked(r) for r in raws]
    links, events = [lk for lk, _ in pairs], [e for _, e in pairs]
    p = plan(links, [], events)
    assert p.stop_reason and "advoware" in p.stop_reason and p.is_empty() and p.withheld["delete_google"] == 3
    p = plan(links, raws, [])
    assert p.stop_reason and "google" in p.stop_reason and p.is_empty()
    assert plan(links, raws, [], complete=False).stop_reason is None  # incremental: nothing changed
    forced = plan(links, [], events, force_deletions=True)
    assert forced.stop_reason is None and kinds(forced) == ["delete_google"] * 3


@pytest.mark.parametrize(("total", "deleted", "stops"), [(40, 11, True), (60, 11, False), (20, 10, False)])
def test_deletion_threshold(total, deleted, stops):
    raws = [termin(i, day=f"2025-03-{1 + i % 28:02d}") for i in range(1, total + 1)]
    pairs = [linked(r) for r in raws]
    links, events = [lk for lk, _ in pairs], [e for _, e in pairs]
    p = plan(links, raws[deleted:], events)
    assert (p.stop_reason is not None) == stops
    if stops:
        assert p.is_empty() and p.withheld["delete_google"] == deleted
        forced = plan(links, raws[deleted:], events, force_deletions=True)
        assert kinds(forced).count("delete_google") == deleted
    else:
        assert kinds(p).count("delete_google") == deleted


def test_new_advoware_item_is_created_with_deterministic_id():
    p = plan([], [termin(5)], [])
    (act,) = p.phase1
    assert act.kind == "create_google" and act.google_event_id == event_id(EMP, 5) == act.google_body["id"]
    assert act.google_body["extendedProperties"]["private"]["advowareFrNr"] == "5"
    assert act.span_start == act.span_end == "2025-06-02"


def test_unmarked_google_copy_is_adopted_not_duplicated():
    raw = termin(5, text="Mandantengespräch")
    foreign = {
        "id": "motia0001",
        "status": "confirmed",
        "summary": "Mandantengespräch",
        "description": "alt",
        "start": {"dateTime": "2025-06-02T10:00:00+02:00"},
        "end": {"dateTime": "2025-06-02T11:00:00+02:00"},
    }
    p = plan([], [raw], [foreign], dry_run=True)
    assert kinds(p) == ["adopt"] and p.dry_run
    act = p.adoptions[0]
    assert act.google_event_id == "motia0001" and act.frnr == 5
    assert act.google_body["extendedProperties"]["private"]["advowareFrNr"] == "5"
    assert p.counts()["adopt"] == 1 and p.counts()["create_google"] == 0


def test_marked_event_without_link_is_adopted_without_rewrite():
    raw = termin(5)
    _, event = linked(raw)
    p = plan([], [raw], [event])
    assert kinds(p) == ["adopt"] and p.adoptions[0].google_body is None


def test_new_google_event_creates_in_advoware_or_is_reported_under_write_protection():
    new = {
        "id": "user0001",
        "status": "confirmed",
        "summary": "Privat",
        "visibility": "private",
        "start": {"date": "2025-05-01"},
        "end": {"date": "2025-05-03"},
    }
    p = plan([], [], [new])
    (act,) = p.phase2
    assert act.kind == "create_advoware" and act.google_event_id == "user0001"
    assert act.advoware_body["abwesenheit"] == 1 and act.advoware_body["datumBis"].startswith("2025-05-02")
    assert act.advoware_body["privat"] == 1
    p = plan([], [], [new], write_protection=True)
    assert p.is_empty() and [r.kind for r in p.reports] == ["write_protected_new_google"]


def test_orphan_of_ours_is_deleted_after_confirmation_and_foreign_marker_reported():
    _, event = linked(termin(5))
    p = plan([], [termin(6)], [event])
    assert [(a.kind, a.frnr, a.confirm_absent) for a in p.phase3] == [("delete_google", 5, "advoware")]
    other = {**event, "id": "x0001", "extendedProperties": {"private": {"advowareFrNr": "5", "advowareEmployee": "ZZ"}}}
    p = plan([], [termin(6)], [other])
    assert [r.kind for r in p.reports] == ["foreign_marker"] and kinds(p) == ["create_google"]


def test_shared_pool_is_skipped_and_reported_unless_included():
    shared = [
        termin(7, kuerzel="ALLE", anwalt="ALLE"),
        termin(8, kuerzel="", anwalt=""),
        termin(9, kuerzel="Allgemein", anwalt="Allgemein"),
    ]
    p = plan([], shared, [])
    assert p.is_empty() and [r.kind for r in p.reports] == ["shared_pool_skipped"] * 3
    assert kinds(plan([], shared, [], include_shared_pool=True)) == ["create_google"] * 3


def test_unsupported_google_edit_of_linked_item_is_reported_and_advoware_kept():
    raw = termin(1)
    link, event = linked(raw)
    bad = edited(event, recurrence=["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"])
    p = plan([link], [raw], [bad])
    assert p.is_empty() and [r.kind for r in p.reports] == ["unsupported_rule"]


def test_write_protection_never_targets_advoware():
    raw, gone = termin(1), termin(2)
    (link, event), (link2, event2) = linked(raw), linked(gone)
    new = {"id": "user0002", "summary": "x", "start": {"date": "2025-05-01"}, "end": {"date": "2025-05-02"}}
    p = plan(
        [link, link2],
        [raw],
        [edited(event, summary="G"), {"id": event2["id"], "status": "cancelled"}, new],
        write_protection=True,
    )
    assert not [a for a in p.actions() if a.kind.endswith("_advoware")]


def test_anonymized_google_change_keeps_advoware_texts():
    raw = termin(1, text="Müller ./. Meier", ort="Saal 1")
    appt = from_advoware(raw, EMP)
    event = {**to_google(appt, employee=EMP, frnr=1, anonymize=True), "status": "confirmed"}
    link = HubLink(EMP, 1, event["id"], fingerprint(appt), fingerprint(from_google(event)))
    assert plan([link], [raw], [event], anonymize=True).is_empty()
    moved = edited(
        event,
        start={"dateTime": "2025-06-02T14:00:00+02:00", "timeZone": "Europe/Berlin"},
        end={"dateTime": "2025-06-02T15:00:00+02:00", "timeZone": "Europe/Berlin"},
    )
    (act,) = plan([link], [raw], [moved], anonymize=True).actions()
    assert act.kind == "update_advoware" and act.advoware_body["text"] == "Müller ./. Meier"
    assert act.advoware_body["uhrzeitVon"] == "14:00:00" and act.advoware_body["ort"] == "Saal 1"


def test_plan_json_round_trip_and_counts():
    raw, new = termin(1), termin(2)
    link, event = linked(raw)
    p = plan([link], [{**raw, "text": "x"}, new, termin(3, kuerzel="ALLE")], [event])
    text = p.to_json()
    back = Plan.from_dict(json.loads(text))
    assert back == p and json.loads(back.to_json()) == json.loads(text)
    counts = p.counts()
    assert counts["create_google"] == 1 and counts["update_google"] == 1 and counts["phase1"] == 1
    assert counts["phase4"] == 1 and counts["report_shared_pool_skipped"] == 1 and counts["stopped"] == 0


# -- the table itself ------------------------------------------------------------------------------------
A_STATES = ("unchanged", "changed", "deleted", "left")
G_STATES = ("unchanged", "changed", "deleted", "left", "unseen", "unsupported")
# "deleted" in Advoware and "left" in Google need opposite answers to one question (is the link's
# span in the window?): no item is ever in both states
PAIRS = [(a, g) for a in A_STATES for g in G_STATES if (a, g) != ("deleted", "left")]


@pytest.mark.parametrize("a_state, g_state", PAIRS)
@pytest.mark.parametrize("same, advoware_wins", [(False, False), (False, True), (True, False)])
def test_every_row_decides_and_write_protection_never_writes_advoware(
    a_state: str, g_state: str, same: bool, advoware_wins: bool
) -> None:
    from include.calendar_engine.plan import ACTION_KINDS
    from include.calendar_engine.planner import decide, protect

    decision = decide(a_state, g_state, same_content=same, advoware_wins=advoware_wins)
    assert decision.kind is None or decision.kind in ACTION_KINDS
    for wp, read_only in ((True, False), (False, True), (True, True)):
        kept = protect(decision, write_protection=wp, read_only=read_only)
        assert kept.kind is None or not ACTION_KINDS[kept.kind].writes_advoware, (a_state, g_state, kept)
    if a_state == "left":
        assert decision.kind is None  # only left the window: never deleted, never rewritten
