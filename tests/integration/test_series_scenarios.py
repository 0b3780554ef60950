"""Series exceptions end to end: the real runner, the Advoware and Google sandboxes, the hub. One test
per case of the README's "Series exceptions" policy, the cases where the series' timing changes under
each of the Google sandbox's timing models (what Google does to exceptions then is not documented).

Every test ends the same way: the Advoware series is whole (never moved, cut, duplicated or deleted by
an occurrence's change), nothing is duplicated, and the next run writes nothing to either side.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.calendar_engine.marker import marker_of
from include.calendar_sync.context import SyncContext
from include.calendar_sync.report import table
from include.status.page import render
from include.status.queries import Sources, collect
from tests.calendar_helpers import termine
from tests.series_helpers import (
    EMP,
    Person,
    at,
    ctx_for,
    exception_rows,
    run,
    seed,
    start_day,
    timing_model,
    weekly_termin,
    writes,
)

pytestmark = pytest.mark.timeout(180)
MODELS = ("anchor", "keep", "reset")


@pytest.fixture
def world(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> Any:
    class World:
        today = date.today()

        def ctx(self, *, write_protection: bool = False) -> SyncContext:
            made = ctx_for(advoware_url, google_url, redis_url, hub, tmp_path, write_protection=write_protection)
            self.opened.append(made)
            return made

        def series_in_advoware(self) -> list[dict[str, Any]]:
            return [t for t in termine(advoware_url, EMP) if t.get("dauertermin")]

        def quiet(self, ctx: SyncContext) -> None:
            """The next run writes nothing to either side (no flip-flop) and reports nothing new."""
            before = writes(advoware_url, google_url)
            _, reported = run(ctx)
            assert writes(advoware_url, google_url) == before, "a run after the change was carried wrote"
            assert not [r for r in reported if r[0].startswith("series_exception")], reported

    w = World()
    w.opened = []
    w.advoware_url, w.google_url, w.hub = advoware_url, google_url, hub
    yield w
    for made in w.opened:
        made.close()


def _synced_series(world: Any, ctx: SyncContext, **kw: Any) -> tuple[Person, dict[str, Any], list[dict[str, Any]]]:
    seed(world.advoware_url, weekly_termin(world.today, **kw))
    run(ctx)
    person = Person(ctx, world.hub)
    master = person.master()
    return person, master, person.instances(master["id"])


# -- an occurrence of an Advoware series moved, retitled or cancelled in Google -----------------------
@pytest.mark.parametrize("change", ["move", "retitle", "cancel"])
def test_one_occurrence_changed_in_google_stays_there_and_is_reported(
    world: Any, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = world.ctx()
    person, master, occurrences = _synced_series(world, ctx)
    (series_before,) = world.series_in_advoware()
    target = occurrences[2]
    if change == "move":
        person.move(target, days=1, hours=3)
    elif change == "retitle":
        person.retitle(target, "Jour fixe (Vertretung)")
    else:
        person.cancel(target)
    advoware_writes = writes(world.advoware_url, world.google_url)[0]

    caplog.set_level(logging.INFO)
    run_id, reported = run(ctx)
    assert ("series_exception_kept", series_before["frNr"], target["id"]) in reported
    assert writes(world.advoware_url, world.google_url)[0] == advoware_writes  # Advoware untouched
    # reported per item, ids only: the run's summary, the task log, the status view
    line = f"series_exception_kept frNr={series_before['frNr']} event={target['id']}"
    assert f"{EMP} {line}" in table(world.hub, run_id)
    assert any(line in r.getMessage() for r in caplog.records)
    assert not any("Jour fixe" in r.getMessage() or "Saal" in r.getMessage() for r in caplog.records)
    status = collect(Sources(world.hub))
    assert [(x["employee"], x["frnr"], x["instance_id"]) for x in status["series_exceptions"]["newest"]] == [
        (EMP, series_before["frNr"], target["id"])
    ]
    page = render(status)
    assert target["id"] in page and "Vertretung" not in page and "Jour fixe" not in page
    assert world.series_in_advoware() == [series_before]
    kind = {"move": "moved", "retitle": "changed", "cancel": "cancelled"}[change]
    assert exception_rows(world.hub) == {target["id"]: (kind, "standing")}
    shown = person.shown()  # the person's edit is still what Google shows
    if change == "cancel":
        assert len(shown) == len(occurrences) - 1
    elif change == "move":
        assert (at(date.fromisoformat(target["start"]["dateTime"][:10]) + timedelta(days=1), 12), "Jour fixe") in shown
    else:
        assert ("Jour fixe (Vertretung)") in {title for _, title in shown}
    world.quiet(ctx)


def test_under_write_protection_an_occurrence_changed_in_google_is_reverted(world: Any) -> None:
    ctx = world.ctx(write_protection=True)
    seed(world.advoware_url, weekly_termin(world.today))
    run(world.ctx())  # the first run without protection (protection only stops Advoware writes anyway)
    person = Person(ctx, world.hub)
    master = person.master()
    occurrences = person.instances(master["id"])
    expected = person.shown()
    person.move(occurrences[1], hours=5)
    person.cancel(occurrences[3])
    advoware_writes = writes(world.advoware_url, world.google_url)[0]

    _, reported = run(ctx)
    assert sorted(r[0] for r in reported if r[0].startswith("series")) == ["series_exception_reverted"] * 2
    assert person.shown() == expected  # Google mirrors Advoware again
    assert writes(world.advoware_url, world.google_url)[0] == advoware_writes
    assert {status for _, status in exception_rows(world.hub).values()} == {"reverted"}
    world.quiet(ctx)


# -- a series created in Google that has exceptions -------------------------------------------------------
def test_a_google_series_with_a_moved_occurrence_waits_until_it_is_moved_back(world: Any) -> None:
    ctx = world.ctx()
    seed(world.advoware_url, weekly_termin(world.today, text="Anker", hour=7))  # Advoware is never empty
    run(ctx)
    person = Person(ctx, world.hub)
    first = start_day(world.today) + timedelta(days=1)
    master = person.insert(
        {
            "summary": "Teamrunde",
            "start": {"dateTime": at(first, 14), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": at(first, 15), "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY"],
        }
    )
    second = person.instances(master["id"])[1]
    person.move(second, days=0, hours=2)
    _, reported = run(ctx)
    assert ("unsupported_rule", None, master["id"]) in reported
    assert [t["text"] for t in world.series_in_advoware()] == ["Anker"]  # not flattened into Advoware
    world.quiet(ctx)
    person.move(person.instances(master["id"])[1], days=0, hours=-2)  # back where the series has it
    run(ctx)
    assert sorted(t["text"] for t in world.series_in_advoware()) == ["Anker", "Teamrunde"]
    assert marker_of(person.master("Teamrunde"))[1] is not None  # linked now
    world.quiet(ctx)


# -- the Advoware series changed after Google exceptions exist ---------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_an_advoware_series_moved_to_another_hour_leaves_no_exception_beside_it(world: Any, model: str) -> None:
    timing_model(world.google_url, model)
    ctx = world.ctx()
    person, master, occurrences = _synced_series(world, ctx, frnr=None)
    person.move(occurrences[1], days=1)
    person.retitle(occurrences[4], "Jour fixe (Vertretung)")
    run(ctx)
    (series,) = world.series_in_advoware()
    later = {
        **series,
        "datum": series["datum"].replace("T09:", "T11:"),
        "uhrzeitVon": "11:00:00",
        "uhrzeitBis": "12:00:00",
        "datumBis": series["datumBis"][:11] + "12:00:00",
    }
    ctx.advoware.update_termin(series["frNr"], later)

    run(ctx)
    run(ctx)  # what Google removed itself shows in the next listing
    shown = person.shown()
    assert len(shown) == len(occurrences)  # nothing beside the new occurrences
    assert {start[11:16] for start, _ in shown} == {"11:00"} and {t for _, t in shown} == {"Jour fixe"}
    assert {status for _, status in exception_rows(world.hub).values()} <= {"dropped", "gone"}
    world.quiet(ctx)


@pytest.mark.parametrize("model", MODELS)
def test_an_advoware_series_shortened_keeps_only_the_exceptions_inside_it(world: Any, model: str) -> None:
    timing_model(world.google_url, model)
    ctx = world.ctx()
    person, master, occurrences = _synced_series(world, ctx)
    inside, outside = occurrences[1], occurrences[6]
    person.move(inside, hours=4)
    person.move(outside, hours=4)
    run(ctx)
    (series,) = world.series_in_advoware()
    new_end = start_day(world.today) + timedelta(weeks=3)
    ctx.advoware.update_termin(series["frNr"], {**series, "datumBis": f"{new_end}T10:00:00"})

    _, first = run(ctx)
    _, second = run(ctx)
    dropped = [r for r in first + second if r[0] == "series_exception_dropped"]
    assert (dropped.count(("series_exception_dropped", series["frNr"], outside["id"])), len(dropped)) == (
        1,
        1,
    )  # each reported once
    shown = person.shown()
    assert len(shown) == 4
    rows = exception_rows(world.hub)
    assert rows[outside["id"]][1] in ("dropped", "gone")
    moved_start = at(date.fromisoformat(inside["start"]["dateTime"][:10]), 13)
    # under "reset" Google removed the inside one at the master's rewrite: the run wrote it again
    assert rows[inside["id"]] == ("moved", "standing") and moved_start in {s for s, _ in shown}
    assert world.series_in_advoware()[0]["datumBis"].startswith(str(new_end))
    world.quiet(ctx)


# -- "this and following" in Google ----------------------------------------------------------------------
def test_a_split_in_google_cuts_the_series_and_carries_the_new_one(world: Any) -> None:
    ctx = world.ctx()
    person, master, occurrences = _synced_series(world, ctx)
    (series,) = world.series_in_advoware()
    # Google's apps: the master ends before the 5th occurrence, a copy starts there an hour later
    cut = occurrences[4]["originalStartTime"]["dateTime"]
    cut_utc = (date.fromisoformat(cut[:10]) - timedelta(days=1)).strftime("%Y%m%d") + "T225959Z"
    person.patch(master["id"], {"recurrence": [f"RRULE:FREQ=WEEKLY;INTERVAL=1;UNTIL={cut_utc}"]})
    copy_body = {
        k: v
        for k, v in master.items()
        if k in ("summary", "description", "location", "visibility", "reminders", "extendedProperties")
    }
    day = date.fromisoformat(cut[:10])
    new = person.insert(
        {
            **copy_body,
            "start": {"dateTime": at(day, 10), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": at(day, 11), "timeZone": "Europe/Berlin"},
            "recurrence": master["recurrence"],
        }
    )
    assert marker_of(new)[1] == series["frNr"]  # a copy of our marker

    run(ctx)
    both = sorted(world.series_in_advoware(), key=lambda t: t["datum"])
    assert len(both) == 2 and both[0]["frNr"] == series["frNr"]
    assert both[0]["datumBis"][:10] == str(day - timedelta(days=1)) and both[1]["datum"].startswith(f"{day}T10:00")
    assert marker_of(person.patch(new["id"], {}))[1] == both[1]["frNr"]  # re-marked with its own frNr
    assert len(person.shown()) == len(occurrences)
    world.quiet(ctx)


@pytest.mark.parametrize("model", MODELS)
def test_an_occurrence_cancelled_while_advoware_extends_the_series(world: Any, model: str) -> None:
    """Both in one interval: the run records the cancellation and rewrites the series; under "reset"
    Google drops the exception at that rewrite, so the run cancels the occurrence again."""
    timing_model(world.google_url, model)
    ctx = world.ctx()
    person, master, occurrences = _synced_series(world, ctx)
    (series,) = world.series_in_advoware()
    person.cancel(occurrences[0])
    longer = date.fromisoformat(series["datumBis"][:10]) + timedelta(weeks=1)
    ctx.advoware.update_termin(series["frNr"], {**series, "datumBis": f"{longer}T10:00:00"})

    run(ctx)
    shown = person.shown()
    assert len(shown) == len(occurrences) and exception_rows(world.hub) == {
        occurrences[0]["id"]: ("cancelled", "standing")
    }
    world.quiet(ctx)


def test_a_calendar_made_anew_takes_its_exceptions_along(world: Any) -> None:
    """The employee's calendar deleted in Google: it is made again and refilled from Advoware, and
    the exceptions of the old one no longer stand (the status view does not list them)."""
    ctx = world.ctx()
    person, master, occurrences = _synced_series(world, ctx)
    person.move(occurrences[1], hours=2)
    run(ctx)
    old = person.calendar
    assert {s for _, s in exception_rows(world.hub).values()} == {"standing"}
    person.call(lambda s: s.calendars().delete(calendarId=old), "calendars.delete")

    run(ctx)
    assert person.calendar != old and len(person.shown()) == len(occurrences)
    assert {s for _, s in exception_rows(world.hub).values()} == {"gone"}
    assert collect(Sources(world.hub))["series_exceptions"]["standing"] == 0
    world.quiet(ctx)


@pytest.mark.parametrize("change", ["cancel", "move", "retitle"])
@pytest.mark.parametrize("model", MODELS)
def test_a_standing_exception_survives_its_series_taking_longer_occurrences(
    world: Any, model: str, change: str
) -> None:
    """Recorded as standing, then the series gets longer occurrences in Advoware (same start): the
    run rewrites the master's timing, and whatever Google does to the exception then, the person's
    change stands afterwards (re-applied where Google removed it) and the hub says standing."""
    timing_model(world.google_url, model)
    ctx = world.ctx()
    person, master, occurrences = _synced_series(world, ctx)
    target = occurrences[2]
    if change == "cancel":
        person.cancel(target)
    elif change == "move":
        person.move(target, days=1, hours=3)
    else:
        person.retitle(target, "Jour fixe (Vertretung)")
    run(ctx)
    kind = {"move": "moved", "retitle": "changed", "cancel": "cancelled"}[change]
    assert exception_rows(world.hub) == {target["id"]: (kind, "standing")}
    (series,) = world.series_in_advoware()
    longer = {**series, "uhrzeitBis": "11:00:00", "datumBis": series["datumBis"][:11] + "11:00:00"}
    ctx.advoware.update_termin(series["frNr"], longer)

    run(ctx)
    shown = person.shown()
    day = date.fromisoformat(target["start"]["dateTime"][:10])
    assert exception_rows(world.hub) == {target["id"]: (kind, "standing")}
    if change == "cancel":
        assert len(shown) == len(occurrences) - 1 and at(day, 9) not in {s for s, _ in shown}
    elif change == "move":
        assert len(shown) == len(occurrences) and (at(day + timedelta(days=1), 12), "Jour fixe") in shown
    else:
        assert len(shown) == len(occurrences) and (at(day, 9), "Jour fixe (Vertretung)") in shown
    world.quiet(ctx)
