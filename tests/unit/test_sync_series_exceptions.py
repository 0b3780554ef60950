"""The planner and series exceptions: what a moved, retitled or cancelled occurrence, a
series created in Google with exceptions, a changed or shortened Advoware series, and a "this and
following" split in Google make the sync do. Pure: raw API data in, a plan out (the policy in the
README's "Series exceptions")."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.calendar_engine import HubLink, Plan, Policy, Window, event_id, fingerprint, from_advoware, from_google
from include.calendar_engine.mapping_google import to_google
from include.calendar_engine.marker import marker_properties
from include.calendar_engine.plan import ADVOWARE_WRITES
from include.calendar_engine.series_exceptions import HubException
from include.calendar_engine.timeutil import BERLIN

EMP = "AB"
WINDOW = Window(date(2025, 1, 1), date(2025, 12, 31))


def series(frnr: int = 1, *, until: str = "2025-05-06", text: str = "Jour fixe", **kw: Any) -> dict[str, Any]:
    """A weekly Advoware series, Tuesdays 09:00-10:00 from 2025-03-04 (DST on 2025-03-30)."""
    raw = {
        "frNr": frnr,
        "text": text,
        "notiz": "",
        "ort": "Saal 3",
        "kuerzel": EMP,
        "anwalt": EMP,
        "datum": "2025-03-04T09:00:00",
        "uhrzeitVon": "09:00:00",
        "datumBis": f"{until}T10:00:00",
        "uhrzeitBis": "10:00:00",
        "abwesenheit": 0,
        "privat": 0,
        "dauertermin": 1,
        "turnus": 1,
        "turnusArt": 2,
        "erinnerung": 0,
        "erinnerungsDatum": None,
        "nr": None,
        "azRubrum": "",
        "zuletztGeaendertAm": "2025-01-10T08:00:00",
    }
    raw.update(kw)
    return raw


def linked(raw: dict[str, Any], *, origin: str = "advoware", gid: str | None = None) -> tuple[HubLink, dict[str, Any]]:
    appt = from_advoware(raw, EMP)
    event = {
        **to_google(appt, employee=EMP, frnr=raw["frNr"], origin=origin, google_id=gid),
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


def instance(master: dict[str, Any], day: str, *, offset: str = "+01:00", **changes: Any) -> dict[str, Any]:
    """The occurrence of `master` on `day` at 09:00 Berlin, as Google returns an exception of it."""
    hour = master["start"]["dateTime"][11:19]
    end = master["end"]["dateTime"][11:19]
    utc = {"+01:00": 8, "+02:00": 7}[offset]
    out = copy.deepcopy({k: v for k, v in master.items() if k != "recurrence"})
    out.update(
        {
            "id": f"{master['id']}_{day.replace('-', '')}T{utc:02d}0000Z",
            "recurringEventId": master["id"],
            "originalStartTime": {"dateTime": f"{day}T{hour}{offset}", "timeZone": "Europe/Berlin"},
            "start": {"dateTime": f"{day}T{hour}{offset}", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": f"{day}T{end}{offset}", "timeZone": "Europe/Berlin"},
            "updated": "2025-02-01T12:00:00Z",
        }
    )
    out.update(changes)
    return out


def moved(event: dict[str, Any], day: str, hour: int, offset: str = "+01:00") -> dict[str, Any]:
    return {
        **event,
        "start": {"dateTime": f"{day}T{hour:02d}:00:00{offset}", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{day}T{hour + 1:02d}:00:00{offset}", "timeZone": "Europe/Berlin"},
    }


def cancelled(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in ("id", "recurringEventId", "originalStartTime")} | {"status": "cancelled"}


def plan(
    links: list[HubLink],
    adv: list[dict[str, Any]],
    goog: list[dict[str, Any]],
    complete: bool = False,
    exceptions: list[HubException] = (),
    **policy: Any,
) -> Plan:  # type: ignore[assignment]
    from include.calendar_engine import plan_sync

    return plan_sync(links, adv, goog, complete, Policy(**policy), WINDOW, employee=EMP, exceptions=exceptions)


def kinds(p: Plan) -> list[str]:
    return [a.kind for a in p.actions()]


# -- 5: a "this and following" split in Google ---------------------------------------------------------
def test_a_split_off_series_carrying_a_copy_of_our_marker_is_created_in_advoware() -> None:
    """Google's "this and following": the master gets an UNTIL and a new series starts with a copy of
    every field, our private marker included (same frNr, another id). The copy is a new Google series:
    created in Advoware and re-marked with its own frNr, never ignored, adopted or deleted as an orphan."""
    raw = series()
    link, master = linked(raw)
    cut = {
        **master,
        "recurrence": ["RRULE:FREQ=WEEKLY;INTERVAL=1;UNTIL=20250331T215959Z"],
        "updated": "2025-02-01T12:00:00Z",
    }
    copy_of = {
        **master,
        "id": "splitcopy0001",
        "summary": "Jour fixe (neu)",
        "updated": "2025-02-01T12:00:01Z",
        "start": {"dateTime": "2025-04-08T11:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2025-04-08T12:00:00+02:00", "timeZone": "Europe/Berlin"},
    }
    p = plan([link], [raw], [cut, copy_of])
    by_event = {a.google_event_id: a for a in p.actions()}
    assert by_event[master["id"]].kind == "update_advoware"  # the cut: a deliberate series edit
    assert by_event[master["id"]].advoware_body["datumBis"].startswith("2025-03-31")
    new = by_event["splitcopy0001"]
    assert new.kind == "create_advoware" and new.advoware_id is None and new.advoware_body["text"] == "Jour fixe (neu)"
    assert new.advoware_body["dauertermin"] == 1
    assert not any(a.kind == "delete_google" for a in p.actions())
    # under write protection the copy is left alone and reported; the master is reverted
    p = plan([link], [raw], [cut, copy_of], write_protection=True)
    assert {a.google_event_id: a.kind for a in p.actions()} == {master["id"]: "update_google"}
    assert ("write_protected_new_google", "splitcopy0001") in {(r.kind, r.google_event_id) for r in p.reports}


def test_the_deterministic_id_is_never_a_copy_and_an_unlinked_copy_is_not_adopted() -> None:
    raw = series()
    _, master = linked(raw)
    assert master["id"] == event_id(EMP, 1)
    copy_of = {**master, "id": "splitcopy0002"}
    # a lost hub: the deterministic id is adopted, the copy with the same marker is a new series
    p = plan([], [raw], [master, copy_of], complete=True)
    assert {(a.kind, a.google_event_id) for a in p.actions()} == {
        ("adopt", master["id"]),
        ("create_advoware", "splitcopy0002"),
    }
    marker = marker_properties(EMP, 1, "advoware")
    assert all(copy_of["extendedProperties"]["private"][k] == v for k, v in marker.items())


# -- 2: an occurrence of a linked series moved, retitled or cancelled in Google ---------------------------
def row_of(action: Any, status: str = "standing") -> HubException:
    """The hub row the executor stores for a keep/revert action."""
    return HubException(
        EMP,
        action.google_event_id,
        action.master_event_id,
        action.original_start,
        frnr=action.frnr,
        kind=action.exception_kind,
        fingerprint=action.google_fingerprint or "",
        status=status,
    )


@pytest.mark.parametrize("origin", ["advoware", "google"])
@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (lambda m: moved(instance(m, "2025-03-11"), "2025-03-12", 14), "moved"),
        (lambda m: instance(m, "2025-03-11", summary="Jour fixe (Vertretung)"), "changed"),
        (lambda m: cancelled(instance(m, "2025-03-11")), "cancelled"),
    ],
)
def test_an_occurrence_changed_in_google_is_kept_reported_and_never_touches_the_series(change, kind, origin):
    raw = series()
    link, master = linked(raw, origin=origin, gid=None if origin == "advoware" else "googleborn001")
    exc = change(master)
    p = plan([link], [raw], [exc])
    (act,) = p.actions()
    assert (act.kind, act.frnr, act.google_event_id, act.master_event_id) == (
        "keep_exception",
        1,
        exc["id"],
        master["id"],
    )
    assert act.exception_kind == kind and act.original_start == "2025-03-11T09:00:00+01:00"
    assert [(r.kind, r.frnr, r.google_event_id) for r in p.reports] == [("series_exception_kept", 1, exc["id"])]
    assert kind in p.reports[0].detail and "Vertretung" not in p.reports[0].detail  # ids only
    # the next run, with the master listed too (a full listing): the known exception asks nothing
    p = plan([link], [raw], [master, exc], complete=True, exceptions=[row_of(act)])
    assert p.is_empty() and not p.reports
    # a second change of the same exception is reported again
    again = moved(instance(master, "2025-03-11"), "2025-03-13", 8)
    assert kinds(plan([link], [raw], [again], exceptions=[row_of(act)])) == ["keep_exception"]


@pytest.mark.parametrize("protection", ["write_protection", "read_only"])
def test_under_write_protection_or_for_a_read_only_series_the_exception_is_reverted(protection):
    raw = series(-3) if protection == "read_only" else series()
    link, master = linked(raw)
    wp = protection == "write_protection"
    for exc in (
        moved(instance(master, "2025-04-01", offset="+02:00"), "2025-04-02", 14, "+02:00"),
        cancelled(instance(master, "2025-04-01", offset="+02:00")),
    ):
        p = plan([link], [raw], [exc], write_protection=wp)
        (act,) = p.actions()
        assert act.kind == "revert_exception" and act.google_event_id == exc["id"]
        body = act.google_body
        assert body["status"] == "confirmed" and body["summary"] == "Jour fixe" and "recurrence" not in body
        assert body["start"]["dateTime"] == "2025-04-01T09:00:00+02:00"
        assert [r.kind for r in p.reports] == ["series_exception_reverted"]
        # what the revert leaves is no deviation: nothing more, no flip-flop
        back = {**instance(master, "2025-04-01", offset="+02:00"), **{k: body[k] for k in ("start", "end")}}
        assert plan([link], [raw], [back], write_protection=wp, exceptions=[row_of(act, "reverted")]).is_empty()


def test_an_exception_undone_by_hand_closes_its_row_once():
    raw = series()
    link, master = linked(raw)
    exc = moved(instance(master, "2025-03-11"), "2025-03-12", 14)
    kept = plan([link], [raw], [exc]).actions()[0]
    undone = instance(master, "2025-03-11")
    p = plan([link], [raw], [undone], exceptions=[row_of(kept)])
    assert kinds(p) == ["close_exception"] and [r.kind for r in p.reports] == ["series_exception_dropped"]
    closed = row_of(kept, "gone")
    assert plan([link], [raw], [undone], exceptions=[closed]).is_empty()


# -- 2: a series created in Google that has exceptions --------------------------------------------------
def google_series(gid: str = "gseries0001") -> dict[str, Any]:
    return {
        "id": gid,
        "summary": "Teamrunde",
        "status": "confirmed",
        "updated": "2025-02-01T12:00:00Z",
        "start": {"dateTime": "2025-03-04T09:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2025-03-04T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;UNTIL=20250506T215959Z"],
    }


def test_a_google_series_with_exceptions_is_not_created_until_they_are_gone():
    master = google_series()
    exc = moved(instance(master, "2025-03-18"), "2025-03-19", 9)
    p = plan([], [], [master, exc])
    assert kinds(p) == ["keep_exception"] and p.actions()[0].frnr is None  # recorded, nothing written
    assert [(r.kind, r.google_event_id, r.detail) for r in p.reports] == [
        ("unsupported_rule", master["id"], "series with exceptions")
    ]
    row = row_of(p.actions()[0])
    # the master changes later, the exception is not in that incremental listing: still held back
    p = plan([], [], [{**master, "summary": "Teamrunde neu"}], exceptions=[row])
    assert p.is_empty() and [r.detail for r in p.reports] == ["series with exceptions"]
    # the occurrence is moved back: the row closes and the series is carried like any new one
    p = plan([], [], [master, instance(master, "2025-03-18")], exceptions=[row])
    assert sorted(kinds(p)) == ["close_exception", "create_advoware"]
    create = next(a for a in p.actions() if a.kind == "create_advoware")
    assert create.google_event_id == master["id"] and create.advoware_body["dauertermin"] == 1


def test_a_google_series_without_deviations_is_created_even_with_exception_records():
    master = google_series()
    same = instance(master, "2025-03-18")  # an exception record equal to its occurrence
    assert kinds(plan([], [], [master, same])) == ["create_advoware"]


# -- 2: the Advoware series changed, or shortened, after Google exceptions exist ---------------------------
def kept_rows(link: HubLink, raw: dict[str, Any], master: dict[str, Any], *days: tuple[str, str]) -> list[HubException]:
    rows = []
    for day, offset in days:
        act = plan([link], [raw], [moved(instance(master, day, offset=offset), day, 15, offset)]).actions()[0]
        rows.append(row_of(act))
    return rows


@pytest.mark.parametrize("wp", [False, True])
def test_an_advoware_series_shortened_drops_the_exceptions_after_its_new_end(wp):
    raw = series()
    link, master = linked(raw)
    rows = kept_rows(link, raw, master, ("2025-03-11", "+01:00"), ("2025-04-22", "+02:00"))
    shorter = {**series(until="2025-03-31"), "zuletztGeaendertAm": "2025-02-02T10:00:00"}
    p = plan([link], [shorter], [], exceptions=rows, write_protection=wp)
    # under WP nothing may stand; else the rule changes: Google may remove the inside one when the
    # master is written (its timing model), so the executor confirms it then (re-applies it if removed)
    inside = [("revert_exception" if wp else "keep_exception", rows[0].instance_id)]
    assert [(a.kind, a.google_event_id) for a in p.actions()] == [
        ("update_google", master["id"]),
        *inside,
        ("drop_exception", rows[1].instance_id),
    ]  # the master first
    assert ("series_exception_dropped", rows[1].instance_id) in [(r.kind, r.google_event_id) for r in p.reports]
    if not wp:
        keep = p.actions()[1]
        assert keep.google_body["start"]["dateTime"] == "2025-03-11T09:00:00+01:00" and keep.exception_body is None
        assert rows[0].instance_id not in [r.google_event_id for r in p.reports]  # known: not reported again


def test_an_advoware_series_moved_to_another_time_drops_every_exception():
    raw = series()
    link, master = linked(raw)
    rows = kept_rows(link, raw, master, ("2025-03-11", "+01:00"), ("2025-04-22", "+02:00"))
    later = series(
        datum="2025-03-04T11:00:00",
        uhrzeitVon="11:00:00",
        uhrzeitBis="12:00:00",
        datumBis="2025-05-06T12:00:00",
        zuletztGeaendertAm="2025-02-02T10:00:00",
    )
    p = plan([link], [later], [], exceptions=rows)
    assert kinds(p) == ["update_google", "drop_exception", "drop_exception"]
    # Google removed them itself (its anchor or reset model): the tombstones only close the rows
    tombs = [cancelled(instance(master, "2025-03-11")), cancelled(instance(master, "2025-04-22", offset="+02:00"))]
    link2 = HubLink(**{**link.__dict__, "advoware_fingerprint": fingerprint(from_advoware(later, EMP))})
    p = plan([link2], [later], tombs, exceptions=rows)
    assert kinds(p) == ["close_exception", "close_exception"]
    assert {r.detail.split(";")[0] for r in p.reports} == {"removed by Google"}
    closed = [HubException(**{**r.__dict__, "status": "gone"}) for r in rows]
    assert plan([link2], [later], tombs, exceptions=closed).is_empty()


def test_a_title_change_in_advoware_keeps_the_exceptions():
    raw = series()
    link, master = linked(raw)
    rows = kept_rows(link, raw, master, ("2025-03-11", "+01:00"))
    retitled = {**raw, "text": "Jour fixe neu", "zuletztGeaendertAm": "2025-02-02T10:00:00"}
    p = plan([link], [retitled], [master], exceptions=rows)
    assert kinds(p) == ["update_google"]  # the timing stays: Google keeps its exceptions
    # Google's master not listed (incremental): whether the timing changes is not known, so the
    # exception is confirmed after the write, silently
    unlisted = plan([link], [retitled], [], exceptions=rows)
    assert kinds(unlisted) == ["update_google", "keep_exception"] and not unlisted.reports


# -- 6: an exception is never mistaken for anything else ----------------------------------------------
def test_an_exception_is_never_adopted_an_orphan_a_deletion_or_a_deleted_master():
    raw = series()
    link, master = linked(raw)
    tombs = [
        cancelled(instance(master, day, offset=off))
        for day, off in (
            ("2025-03-04", "+01:00"),
            ("2025-03-11", "+01:00"),
            ("2025-03-18", "+01:00"),
            ("2025-03-25", "+01:00"),
            ("2025-04-01", "+02:00"),
            ("2025-04-08", "+02:00"),
            ("2025-04-15", "+02:00"),
            ("2025-04-22", "+02:00"),
            ("2025-04-29", "+02:00"),
            ("2025-05-06", "+02:00"),
        )
    ]
    others = [linked(series(f, until="2025-03-05"))[0] for f in range(2, 12)]  # ten more links
    # every occurrence cancelled, in a full listing with the master: no deletion, no safety stop
    p = plan(
        [link, *others],
        [raw, *(series(f, until="2025-03-05") for f in range(2, 12))],
        [master, *tombs, *(linked(series(f, until="2025-03-05"))[1] for f in range(2, 12))],
        complete=True,
    )
    assert p.stop_reason is None and set(kinds(p)) == {"keep_exception"} and len(p.actions()) == 10
    # a lost hub: the exceptions carry the master's marker, only the master is adopted
    moved_one = moved(instance(master, "2025-03-11"), "2025-03-12", 14)
    p = plan([], [raw], [moved_one, master], complete=True)
    assert [(a.kind, a.google_event_id) for a in p.actions() if a.kind != "keep_exception"] == [("adopt", master["id"])]
    # Advoware no longer lists the frNr: the master may be an orphan, its exception never is one
    p = plan([], [series(5)], [moved_one], complete=True)
    assert not any(a.kind == "delete_google" for a in p.actions())


def test_anonymised_exceptions_compare_only_what_google_holds():
    raw = series()
    appt = from_advoware(raw, EMP)
    master = {**to_google(appt, employee=EMP, frnr=1, anonymize=True), "status": "confirmed"}
    link = HubLink(EMP, 1, master["id"], fingerprint(appt), fingerprint(from_google(master)))
    same = instance(master, "2025-03-11")
    assert plan([link], [raw], [same], anonymize=True).is_empty()
    retitled = instance(master, "2025-03-11", summary="Notiz")
    assert kinds(plan([link], [raw], [retitled], anonymize=True)) == []  # the title is not compared
    assert kinds(plan([link], [raw], [moved(same, "2025-03-12", 9)], anonymize=True)) == ["keep_exception"]


def test_all_day_series_exceptions_are_keyed_by_date():
    raw = series(
        datum="2025-03-04T00:00:00",
        uhrzeitVon="00:00:00",
        uhrzeitBis="23:59:00",
        datumBis="2025-05-06T23:59:00",
        abwesenheit=1,
    )
    link, master = linked(raw)
    exc = {
        **{k: v for k, v in master.items() if k != "recurrence"},
        "id": f"{master['id']}_20250311",
        "recurringEventId": master["id"],
        "originalStartTime": {"date": "2025-03-11"},
        "start": {"date": "2025-03-12"},
        "end": {"date": "2025-03-13"},
    }
    (act,) = plan([link], [raw], [exc]).actions()
    assert (act.kind, act.original_start, act.exception_kind) == ("keep_exception", "2025-03-11", "moved")


def test_write_protection_switched_on_reverts_exceptions_kept_before():
    """Kept while Advoware was writable; under write protection Google must mirror Advoware, so the
    next run reverts them although its incremental listing does not return them."""
    raw = series()
    link, master = linked(raw)
    rows = kept_rows(link, raw, master, ("2025-03-11", "+01:00"))
    cancelled_row = row_of(plan([link], [raw], [cancelled(instance(master, "2025-03-25"))]).actions()[0])
    p = plan([link], [raw], [], exceptions=[*rows, cancelled_row], write_protection=True)
    assert [(a.kind, a.google_event_id) for a in p.actions()] == [
        ("revert_exception", rows[0].instance_id),
        ("revert_exception", cancelled_row.instance_id),
    ]
    assert {a.google_body["start"]["dateTime"] for a in p.actions()} == {
        "2025-03-11T09:00:00+01:00",
        "2025-03-25T09:00:00+01:00",
    }
    assert plan([link], [raw], [], exceptions=[*rows, cancelled_row]).is_empty()  # without: they stand


def test_an_exception_kept_while_its_series_is_rewritten_carries_its_occurrence():
    """Google may drop it when the series is rewritten (its timing model): the executor reads it
    again then, so the kept action carries the occurrence to compare with."""
    raw = series()
    link, master = linked(raw)
    exc = cancelled(instance(master, "2025-03-11"))
    longer = {**series(until="2025-05-13"), "zuletztGeaendertAm": "2025-02-02T10:00:00"}
    update, keep = plan([link], [longer], [exc]).actions()
    assert update.kind == "update_google" and keep.kind == "keep_exception"
    assert keep.google_body["start"]["dateTime"] == "2025-03-11T09:00:00+01:00"
    assert keep.exception_body == {"status": "cancelled"}  # what is written again if Google removed it
    stored = plan([link], [longer], [exc])
    assert Plan.from_dict(json.loads(stored.to_json())) == stored  # the stored plan keeps it
    (plain,) = plan([link], [raw], [exc]).actions()
    assert plain.kind == "keep_exception" and plain.google_body is None  # nothing rewritten: as listed


# -- the invariants as a property -------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    weeks=st.integers(1, 30),
    k=st.integers(0, 30),
    how=st.sampled_from(("move", "retitle", "cancel")),
    hours=st.sampled_from((-30, -2, 1, 5, 24, 24 * 7)),
    wp=st.booleans(),
    anonymize=st.booleans(),
    policy=st.sampled_from(("advoware_wins", "google_wins", "last_change_wins")),
    listed_master=st.booleans(),
)
def test_one_occurrence_changed_never_touches_the_series_and_settles(
    weeks, k, how, hours, wp, anonymize, policy, listed_master
):
    """Whatever one occurrence becomes in Google, under any policy: no write to Advoware, none to the
    series in Google, one report of the exception, and once its action is applied nothing more."""
    first = datetime(2025, 3, 4, 9, tzinfo=BERLIN)
    until = (first + timedelta(weeks=weeks)).date()
    raw = series(until=until.isoformat())
    appt = from_advoware(raw, EMP)
    master = {
        **to_google(appt, employee=EMP, frnr=1, anonymize=anonymize),
        "status": "confirmed",
        "updated": "2025-01-10T07:00:00Z",
    }
    link = HubLink(
        EMP,
        1,
        master["id"],
        fingerprint(appt),
        fingerprint(from_google(master)),
        raw["zuletztGeaendertAm"],
        master["updated"],
    )
    occ = first + timedelta(weeks=k % (weeks + 1))
    exc = occurrence_event(master, occ)
    if how == "cancel":
        exc = cancelled(exc)
    elif how == "retitle":
        exc["summary"], exc["location"] = "Vertretung", "Saal 9"
    else:
        for key in ("start", "end"):
            at = datetime.fromisoformat(exc[key]["dateTime"]) + timedelta(hours=hours)
            exc[key] = {"dateTime": at.astimezone(BERLIN).isoformat(), "timeZone": "Europe/Berlin"}
    goog = [master, exc] if listed_master else [exc]
    options = {"write_protection": wp, "anonymize": anonymize, "conflict_policy": policy}
    p = plan([link], [raw], goog, **options)
    assert not any(a.kind in ADVOWARE_WRITES or a.google_event_id == master["id"] for a in p.actions())
    if how == "retitle" and anonymize:
        assert p.is_empty()  # Google holds no title of ours: nothing deviates
        return
    (act,) = p.actions()
    assert act.kind == ("revert_exception" if wp else "keep_exception") and act.google_event_id == exc["id"]
    assert [r.kind for r in p.reports] == ["series_exception_reverted" if wp else "series_exception_kept"]
    if wp:  # Google after the revert: the occurrence as the series has it
        after = {
            **exc,
            **{
                k: act.google_body[k]
                for k in ("summary", "description", "location", "start", "end", "visibility", "reminders", "status")
            },
        }
        rows = [row_of(act, "reverted")]
    else:
        after, rows = exc, [row_of(act)]
    again = plan([link], [raw], [master, after] if listed_master else [after], exceptions=rows, **options)
    assert again.is_empty() and not again.reports


def occurrence_event(master: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The occurrence of `master` starting at `at` (Berlin), as Google returns an instance of it."""
    start = datetime.fromisoformat(master["start"]["dateTime"])
    duration = datetime.fromisoformat(master["end"]["dateTime"]) - start
    out = copy.deepcopy({k: v for k, v in master.items() if k != "recurrence"})
    out.update(
        {
            "id": f"{master['id']}_{at.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            "recurringEventId": master["id"],
            "originalStartTime": {"dateTime": at.isoformat(), "timeZone": "Europe/Berlin"},
            "start": {"dateTime": at.isoformat(), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": (at + duration).astimezone(BERLIN).isoformat(), "timeZone": "Europe/Berlin"},
            "updated": "2025-02-01T12:00:00Z",
        }
    )
    return out
