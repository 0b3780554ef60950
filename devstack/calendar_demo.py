"""The calendar part of `make demo`: a full sync of the sandbox firm, then changes on both sides and a
second run that carries them across. Sandbox mode only (it seeds and edits the sandboxes).

    python -m devstack.calendar_demo [--employees 3] [--per-employee 12] [--seed 4711]

Uses .env (ADVOWARE_*, GOOGLE_*, POSTGRES_*, REDIS_URL) and runs the engine in this process, the
same functions the `advoware_calendar_sync` DAG runs as tasks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
from googleapiclient.errors import HttpError

from include.calendar_engine.ids import event_id
from include.calendar_engine.marker import marker_of
from include.calendar_sync.context import SyncContext
from include.calendar_sync.report import table
from include.calendar_sync.runner import sync_all
from include.google_calendar.errors import error_info
from include.hub import links as hub_links
from include.hub.db import connect, migrate
from include.settings import Settings, get_settings


def _seed(settings: Settings, seed: int, employees: int, per_employee: int) -> None:
    body = {
        "seed": seed,
        "employees": employees,
        "appointments_per_employee": per_employee,
        "start": date.today().isoformat(),
    }
    httpx.post(f"{settings.advoware.base_url.rstrip('/')}/_sandbox/seed", json=body, timeout=30).raise_for_status()


def _ordinary(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in items if int(t["frNr"]) > 0 and not t.get("dauertermin") and not t.get("abwesenheit")]


@dataclass(frozen=True)
class Edit:
    """A person's edit on one side, and how to see that a run carried it to the other."""

    note: str
    arrived: Callable[..., bool]  # called with the SyncContext; lambdas bind their values as defaults


def _google_event(ctx: SyncContext, employee: str, frnr: int) -> dict[str, Any] | None:
    """The employee's event of this appointment (our deterministic id), None if there is none."""
    session, calendar_id = ctx.calendar(employee)
    try:
        event = session.execute(
            lambda s: s.events().get(calendarId=calendar_id, eventId=event_id(employee, frnr)), "events.get"
        )
    except HttpError as exc:
        if error_info(exc).status in (404, 410):
            return None
        raise
    return None if event.get("status") == "cancelled" else event


def _starts(event: dict[str, Any] | None, day: str, hhmm: str) -> bool:
    return str(((event or {}).get("start") or {}).get("dateTime", "")).startswith(f"{day}T{hhmm}")


def _advoware_at(termin: dict[str, Any] | None, hhmm: str) -> bool:
    t = termin or {}
    return str(t.get("datum", ""))[11:16] == hhmm or str(t.get("uhrzeitVon", ""))[:5] == hhmm


def _gone_from_google(ctx: SyncContext, employee: str, frnr: int) -> bool:
    return _google_event(ctx, employee, frnr) is None


def _linked_frnr(ctx: SyncContext, employee: str, google_event_id: str) -> int | None:
    with connect(ctx.hub_dsn) as conn:
        row = hub_links.find_link(conn, employee, google_event_id=google_event_id)
    return int(row["frnr"]) if row and row["frnr"] is not None and row["status"] == "linked" else None


def make_changes(ctx: SyncContext, employees: list[str]) -> list[Edit]:
    """A person's edits on both sides; each says how to see it carried across by a later run."""
    today = date.today()
    window = (today - timedelta(days=30), today + timedelta(days=365))
    first, second = employees[0], employees[1 % len(employees)]
    edits: list[Edit] = []
    adv = ctx.advoware
    a1 = _ordinary(adv.list_termine(first, *window))
    moved = a1[0]
    if ctx.settings.sync.anonymize:  # Google holds times only (SYNC_ANONYMIZE): the edit moves the time
        day = str(moved["datum"])[:10]
        adv.update_termin(
            moved["frNr"],
            {
                **moved,
                "datum": f"{day}T16:00:00",
                "datumBis": f"{day}T17:00:00",
                "uhrzeitVon": "16:00:00",
                "uhrzeitBis": "17:00:00",
            },
        )
        edits.append(
            Edit(
                f"Advoware: frNr {moved['frNr']} ({first}) moved to 16:00 -> Google event moved",
                lambda c, f=moved["frNr"], d=day: _starts(_google_event(c, first, f), d, "16:00"),
            )
        )
    else:
        place = "Besprechungsraum 3 (in Advoware geändert)"
        adv.update_termin(moved["frNr"], {**moved, "ort": place})
        edits.append(
            Edit(
                f"Advoware: frNr {moved['frNr']} ({first}) new location -> Google event updated",
                lambda c, f=moved["frNr"]: (_google_event(c, first, f) or {}).get("location") == place,
            )
        )
    new = adv.create_termin(
        {
            "kuerzel": first,
            "anwalt": first,
            "text": "Neuer Termin aus Advoware",
            "datum": f"{(today + timedelta(days=3)).isoformat()}T14:00:00",
            "datumBis": f"{(today + timedelta(days=3)).isoformat()}T15:00:00",
            "uhrzeitVon": "14:00:00",
            "uhrzeitBis": "15:00:00",
        }
    )
    edits.append(
        Edit(
            f"Advoware: frNr {new['frNr']} ({first}) created -> Google event created",
            lambda c, f=new["frNr"]: _google_event(c, first, f) is not None,
        )
    )
    gone = _ordinary(adv.list_termine(second, *window))[-1]
    adv.delete_termin(gone["frNr"])
    edits.append(
        Edit(
            f"Advoware: frNr {gone['frNr']} ({second}) deleted -> Google event deleted",
            lambda c, f=gone["frNr"]: _gone_from_google(c, second, f),
        )
    )

    session, calendar_id = ctx.calendar(second)
    events = session.execute(lambda s: s.events().list(calendarId=calendar_id, maxResults=2500), "events.list")["items"]
    edited = next(
        e
        for e in events
        if (marker_of(e)[1] or 0) > 0
        and "dateTime" in e["start"]
        and not e.get("recurrence")
        and marker_of(e)[1] != gone["frNr"]
    )
    renamed = marker_of(edited)[1]
    if ctx.settings.sync.anonymize:  # Google's copy has no texts to edit: the person moves it
        day = str(edited["start"]["dateTime"])[:10]
        body = {
            "start": {"dateTime": f"{day}T07:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": f"{day}T07:30:00", "timeZone": "Europe/Berlin"},
        }
        session.execute(
            lambda s: s.events().patch(calendarId=calendar_id, eventId=edited["id"], body=body), "events.patch"
        )
        edits.append(
            Edit(
                f"Google: event of frNr {renamed} ({second}) moved to 07:00 -> Advoware updated",
                lambda c, f=renamed: _advoware_at(c.advoware.get_termin(f), "07:00"),
            )
        )
    else:
        session.execute(
            lambda s: s.events().patch(
                calendarId=calendar_id, eventId=edited["id"], body={"summary": "Im Kalender umbenannt"}
            ),
            "events.patch",
        )
        edits.append(
            Edit(
                f"Google: event of frNr {renamed} ({second}) renamed -> Advoware updated",
                lambda c, f=renamed: (c.advoware.get_termin(f) or {}).get("text") == "Im Kalender umbenannt",
            )
        )
    day = (today + timedelta(days=5)).isoformat()
    created = session.execute(
        lambda s: s.events().insert(
            calendarId=calendar_id,
            body={
                "summary": "Neuer Termin aus Google",
                "start": {"dateTime": f"{day}T09:00:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": f"{day}T09:30:00", "timeZone": "Europe/Berlin"},
            },
        ),
        "events.insert",
    )
    edits.append(
        Edit(
            f"Google: event {created['id']} ({second}) created -> Advoware appointment created",
            lambda c, g=created["id"]: _linked_frnr(c, second, g) is not None,
        )
    )
    return edits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calendar-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4711)
    parser.add_argument("--employees", type=int, default=3)
    parser.add_argument("--per-employee", type=int, default=12)
    args = parser.parse_args(argv)
    settings = get_settings()
    if not settings.sandbox_mode:
        print("the calendar demo seeds and edits the sandboxes: set SANDBOX_MODE=true", file=sys.stderr)
        return 2
    migrate(settings.postgres.dsn())
    _seed(settings, args.seed, args.employees, args.per_employee)
    ctx = SyncContext.from_settings(settings)
    try:
        print("== 1. full sync of the sandbox firm")
        run_id, results = sync_all(ctx)
        print(table(ctx.hub_dsn, run_id))
        print("\n== 2. changes on both sides")
        edits = make_changes(ctx, sorted(results))
        print("\n".join(f"   {e.note}" for e in edits))
        print("\n== 3. the next run carries them across")
        run_id, results = sync_all(ctx)
        print(table(ctx.hub_dsn, run_id))
        missing = [e.note for e in edits if not e.arrived(ctx)]
        for e in edits:
            print(f"   {'carried across' if e.note not in missing else 'NOT carried across'}: {e.note}")
        failed = [employee for employee, r in results.items() if r.get("status") != "success"]
        return 1 if failed or missing else 0
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
