"""A Hypothesis state machine over the real calendar sync (in the spirit of vdirsyncer's SyncMachine).

Two employees, the Advoware and Google sandboxes, the real hub (PostgreSQL) and Redis. Rules: a
person creates, edits and deletes appointments in Advoware (REST) and in Google (API, as the
calendar's owner), switches the conflict policy and write protection; sync runs are clean (the
real runner), faulty (injected 5xx/429/drops/"empty list" glitches), killed after the n-th API call
(before or after it reached the server), stopped after some phase, or an Airflow-style retry of the
remaining phases of a stopped run.

After every clean run: both sides hold the same items (every Advoware appointment has exactly one
Google event with the same canonical fingerprint, and vice versa), nothing is duplicated, nothing a
person did not delete is gone, edits land where the policy says (where that is decidable from the
person's actions alone), and a second run writes nothing. During every run under write protection
Advoware receives no write.

Series: weekly series are made in Advoware and in Google; a person moves or cancels one
occurrence in Google, changes a whole series in Google ("all events": title, time, its end) or in
Advoware. Invariants after every clean run: an Advoware series is never moved, cut or deleted because
one occurrence changed (a series whose only changes were occurrence changes is exactly as it was);
no exception stands beside a linked series that is no occurrence of it (no duplicate); every
exception that deviates from its series is known to the hub as standing (what the status view lists
and the run reported), and nothing else is; under write protection no deviation stands in a linked
series; and the second run writes nothing. The test runs under each of the Google sandbox's timing
models (what Google does to exceptions when a series' time or end changes is not documented).

Every appointment's title starts with a token (T7, S3 = special with negative frNr, A1 = anchor,
never deleted so Advoware never lists nothing) and a revision, so items are followed across
sides, ids and revisions without trusting the sync's own bookkeeping.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from include.advoware.client import AdvowareClient
from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.mapping_advoware import from_advoware
from include.calendar_engine.mapping_google import from_google
from include.calendar_engine.marker import marker_of
from include.calendar_engine.models import Appointment
from include.calendar_engine.timeutil import BERLIN
from include.calendar_sync.context import SyncContext
from include.calendar_sync.employees import active_employees
from include.calendar_sync.executor import run_phase
from include.calendar_sync.finalize import finalize
from include.calendar_sync.prepare import RunParams, prepare
from include.calendar_sync.runner import PHASES, new_run_id, sync_all, sync_employee
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.ratelimit import Backoff
from tests.calendar_helpers import calendar_ids, make_ctx
from tests.calendar_user import PLACES, Content, User, advoware_body, token_of
from tests.conftest import HUB_TABLES

pytestmark = pytest.mark.timeout(420)

EMPLOYEES = ("AB", "CD")
POLICIES = ("advoware_wins", "google_wins", "last_change_wins")
TIMING_MODELS = ("anchor", "keep", "reset")
SERIES_SHAPE = ("datum", "uhrzeitVon", "uhrzeitBis", "datumBis", "dauertermin", "turnus", "turnusArt")


class Crash(BaseException):
    """Stands for the worker process being killed: not an Exception, so nothing catches it."""


# -- strategies --------------------------------------------------------------------------------------
contents = st.builds(
    Content,
    day=st.integers(1, 40),
    start_q=st.integers(0, 36),
    dur_q=st.integers(1, 8),
    all_day=st.booleans(),
    days=st.integers(1, 3),
    place=st.sampled_from(PLACES),
    private=st.booleans(),
    weekly=st.sampled_from((0, 0, 0, 4)),
)
google_contents = contents.map(lambda c: Content(**{**c.__dict__, "weekly": 0}))
google_series = st.builds(
    Content,
    day=st.integers(1, 30),
    start_q=st.integers(0, 36),
    dur_q=st.integers(1, 8),
    place=st.sampled_from(PLACES),
    weekly=st.integers(2, 5),
)
pick = st.integers(0, 10_000)  # index into the items that exist at that moment
edits = st.tuples(st.sampled_from((None, *PLACES)), st.sampled_from((0, 0, 1, 3)))
fault_specs = st.one_of(
    st.builds(
        lambda m, s, n: {"match": m, "kind": "status", "status": s, "count": n},
        st.sampled_from(("events.*", "batch", "events.list", "events.update", "calendars.*")),
        st.sampled_from((500, 503, 429)),
        st.integers(1, 3),
    ),
    st.builds(
        lambda m, s, r, seed: {"match": m, "kind": "status", "status": s, "rate": r, "seed": seed},
        st.sampled_from(("events.*", "batch")),
        st.sampled_from((503, 429)),
        st.sampled_from((0.2, 0.5)),
        st.integers(0, 99),
    ),
    st.builds(
        lambda m, n: {"match": m, "kind": "drop", "count": n}, st.sampled_from(("events.*", "batch")), st.integers(1, 2)
    ),
)
advoware_fault_specs = st.one_of(
    st.builds(
        lambda m, s, n: {"match": m, "kind": "status", "status": s, "count": n},
        st.sampled_from(("Termine.*", "Termine.create", "Termine.update", "Termine.get")),
        st.sampled_from((500, 503, 429)),
        st.integers(1, 3),
    ),
    st.builds(lambda n: {"match": "Termine.*", "kind": "drop", "count": n}, st.integers(1, 2)),
)


# -- the model ---------------------------------------------------------------------------------------
@dataclass
class Item:
    """One appointment as the person knows it, followed by its token."""

    token: str
    employee: str
    read_only: bool = False
    anchor: bool = False
    rev: int = 0
    alive: bool = False  # in the last converged state
    title: str | None = None  # its title in the last converged state
    google_only: bool = False  # created in Google under write protection (or held back), left alone
    shape: tuple[Any, ...] | None = None  # an Advoware series' timing in the last converged state
    actions: list[tuple[str, str, str]] = field(default_factory=list)  # (side, create|edit|delete, title)
    # since the person's first action of the interval: a non-clean run happened / write protection changed
    dirty: bool = False
    wp_changed: bool = False

    def next_title(self) -> str:
        self.rev += 1
        return f"{self.token} r{self.rev}"


@dataclass
class Side:
    """What one employee's two sides hold now, by token (Google: events and series, not the
    exceptions of a series: those are one occurrence of it, `exceptions`)."""

    advoware: dict[str, list[dict[str, Any]]]
    google: dict[str, list[dict[str, Any]]]
    exceptions: list[dict[str, Any]] = field(default_factory=list)


class Cluster:
    """The sandboxes, hub and Redis of one test, reset for every example."""

    def __init__(self, advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> None:
        self.advoware_url, self.google_url, self.redis_url, self.hub = advoware_url, google_url, redis_url, hub
        self.tmp_path = tmp_path

    def reset(self) -> None:
        for url in (self.advoware_url, self.google_url):
            _http.post(f"{url}/_sandbox/reset").raise_for_status()
        with psycopg.connect(self.hub, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {HUB_TABLES} RESTART IDENTITY")
        redis.Redis.from_url(self.redis_url).flushdb()


# one client for the admin reads: httpx.get() builds a fresh client (and SSL context, ~70 ms) per call
_http = httpx.Client(timeout=30)


def stats(url: str) -> dict[str, Any]:
    return _http.get(f"{url}/_sandbox/stats").json()


def faults(url: str, *specs: dict[str, Any]) -> None:
    _http.post(f"{url}/_sandbox/faults", json={"clear": True, "faults": list(specs)}).raise_for_status()


def _writes(url: str, endpoint: str | None = None) -> int:
    s = stats(url)
    return int(s["total_writes"] if endpoint is None else s["writes"].get(endpoint, 0))


def _canon(appt: Appointment | Any) -> str | None:
    return fingerprint(appt) if isinstance(appt, Appointment) else None


def _shape(termin: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(str(termin.get(k)) for k in SERIES_SHAPE)


def _instant(when: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(when["dateTime"]).astimezone(BERLIN)


def _deviations(master: dict[str, Any], instances: list[dict[str, Any]]) -> dict[str, str]:
    """instance id → how it deviates from its series (what the person did, seen from Google alone):
    cancelled, moved, changed (title or place), or orphan (its original start is no occurrence of the
    series any more, and it still shows). Computed with dateutil, not with the sync's code."""
    start = _instant(master["start"])
    duration = _instant(master["end"]) - start
    occurrences = set(rrulestr("\n".join(master["recurrence"]), dtstart=start, forceset=True))
    out = {}
    for inst in instances:
        original = _instant(inst["originalStartTime"])
        cancelled = inst.get("status") == "cancelled"
        if original not in occurrences:
            if not cancelled:
                out[inst["id"]] = "orphan"
        elif cancelled:
            out[inst["id"]] = "cancelled"
        elif (_instant(inst["start"]), _instant(inst["end"]) - _instant(inst["start"])) != (original, duration):
            out[inst["id"]] = "moved"
        elif (inst.get("summary"), inst.get("location", "")) != (master.get("summary"), master.get("location", "")):
            out[inst["id"]] = "changed"
    return out


def build_machine(cluster: Cluster, timing_model: str = "anchor") -> type[RuleBasedStateMachine]:
    class CalendarSyncMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            cluster.reset()
            _http.post(
                f"{cluster.google_url}/_sandbox/config", json={"series_timing_model": timing_model}
            ).raise_for_status()
            self.today = date.today()
            self.ctx: SyncContext = make_ctx(
                cluster.advoware_url,
                cluster.google_url,
                cluster.redis_url,
                cluster.hub,
                cluster.tmp_path,
                google_retries=3,
            )
            s = self.ctx.settings
            self.user = User(
                AdvowareClient(
                    s.advoware.model_copy(update={"write_protection": False}),
                    redis_client=redis.Redis.from_url(cluster.redis_url),
                    backoff_base_s=0.01,
                    backoff_max_s=0.05,
                ),
                GoogleCalendarClient(
                    s.google,
                    ServiceAccount.from_settings(s.google),
                    limiter=None,
                    backoff=Backoff(base_s=0.01, cap_s=0.05, max_retries=3),
                ).session_for(None),
                self.today,
            )
            self.items: dict[str, Item] = {}
            self.counter = 0
            self.pending: dict[str, tuple[int, int]] = {}  # employee -> (plan id, next phase) of a stopped run
            self.synced_once = False
            self.log: list[str] = []

        # -- helpers ---------------------------------------------------------------------------------------
        @property
        def wp(self) -> bool:
            return self.ctx.write_protection

        def new_item(self, employee: str, prefix: str = "T", **kw: Any) -> Item:
            self.counter += 1
            item = Item(f"{prefix}{self.counter}", employee, **kw)
            self.items[item.token] = item
            return item

        def calendars(self) -> dict[str, str]:
            return calendar_ids(cluster.hub)

        def side(self, employee: str) -> Side:
            adv: dict[str, list[dict[str, Any]]] = {}
            for t in _http.get(f"{cluster.advoware_url}/_sandbox/state").json()["termine"]:
                if t.get("kuerzel") != employee:
                    continue
                adv.setdefault(token_of(t.get("text")) or "?", []).append(t)
            goog: dict[str, list[dict[str, Any]]] = {}
            exceptions: list[dict[str, Any]] = []
            calendar_id = self.calendars().get(employee)
            cals = _http.get(f"{cluster.google_url}/_sandbox/state").json()["calendars"] if calendar_id else []
            for cal in cals:
                if cal["id"] != calendar_id:
                    continue
                for e in cal["events"]:
                    if e.get("recurringEventId"):
                        exceptions.append(e)
                    elif e.get("status") != "cancelled":
                        goog.setdefault(token_of(e.get("summary")) or "?", []).append(e)
            return Side(adv, goog, exceptions)

        def taint(self) -> None:
            """A run other than a clean one: what it did to items a person touched is not known."""
            for item in self.items.values():
                item.dirty = item.dirty or bool(item.actions)

        def note(self, text: str) -> None:
            self.log.append(text)

        # -- setup -----------------------------------------------------------------------------------------
        @initialize(first=st.lists(contents, min_size=0, max_size=3))
        def seed(self, first: list[Content]) -> None:
            """Two employees, each with an anchor, a special (negative frNr), a weekly series and a few
            appointments."""
            body: dict[str, Any] = {
                "mitarbeiter": [
                    {"kuerzel": e, "vorname": e, "name": e, "email": f"{e.lower()}@kanzlei.example", "aktiv": True}
                    for e in EMPLOYEES
                ],
                "termine": [],
            }
            for n, employee in enumerate(EMPLOYEES):
                anchor = self.new_item(employee, "A", anchor=True)
                special = self.new_item(employee, "S", read_only=True)
                body["termine"].append(advoware_body(Content(day=2), anchor.next_title(), employee, self.today))
                body["termine"].append(
                    {
                        **advoware_body(Content(day=3, all_day=True), special.next_title(), employee, self.today),
                        "frNr": -(n + 1),
                    }
                )
                series = self.new_item(employee)
                body["termine"].append(
                    advoware_body(Content(day=4, start_q=8, weekly=4), series.next_title(), employee, self.today)
                )
                for c in first:
                    item = self.new_item(employee)
                    body["termine"].append(advoware_body(c, item.next_title(), employee, self.today))
            _http.post(f"{cluster.advoware_url}/_sandbox/seed", json=body).raise_for_status()
            for item in self.items.values():
                item.actions.append(("advoware", "create", f"{item.token} r1"))

        # -- a person's actions ----------------------------------------------------------------------------
        @rule(employee=st.sampled_from(EMPLOYEES), c=contents)
        def create_in_advoware(self, employee: str, c: Content) -> None:
            item = self.new_item(employee)
            title = item.next_title()
            self.user.create_advoware(employee, c, title)
            item.actions.append(("advoware", "create", title))
            self.note(f"A+ {title} {employee}")

        @precondition(lambda self: self.synced_once)
        @rule(employee=st.sampled_from(EMPLOYEES), c=google_contents)
        def create_in_google(self, employee: str, c: Content) -> None:
            calendar_id = self.calendars().get(employee)
            if not calendar_id:
                return
            item = self.new_item(employee)
            title = item.next_title()
            self.user.create_google(calendar_id, c, title)
            item.actions.append(("google", "create", title))
            self.note(f"G+ {title} {employee}")

        def _target(self, employee: str, which: str, n: int, *, deleting: bool) -> tuple[Item, dict] | None:
            side = self.side(employee)
            found = side.advoware if which == "advoware" else side.google
            # ordinary items first: small picks (what Hypothesis tries most) hit the same item from both sides
            candidates = sorted(
                ((tok[0] != "T", int(tok[1:])), tok, rec)
                for tok, recs in found.items()
                for rec in recs
                if tok in self.items and not (deleting and self.items[tok].anchor)
            )
            candidates = [(tok, rec) for _, tok, rec in candidates]
            if not candidates:
                return None
            tok, rec = candidates[n % len(candidates)]
            return self.items[tok], rec

        @rule(employee=st.sampled_from(EMPLOYEES), n=pick, how=edits)
        def edit_in_advoware(self, employee: str, n: int, how: tuple[str | None, int]) -> None:
            target = self._target(employee, "advoware", n, deleting=False)
            if target:
                item, termin = target
                title = item.next_title()
                self.user.edit_advoware(termin, title, place=how[0], shift=how[1])
                item.actions.append(("advoware", "edit", title))
                self.note(f"A~ {title} {employee} {how}")

        @rule(employee=st.sampled_from(EMPLOYEES), n=pick, how=edits)
        def edit_in_google(self, employee: str, n: int, how: tuple[str | None, int]) -> None:
            target = self._target(employee, "google", n, deleting=False)
            if target:
                item, event = target
                title = item.next_title()
                self.user.edit_google(self.calendars()[employee], event, title, place=how[0], shift=how[1])
                item.actions.append(("google", "edit", title))
                self.note(f"G~ {title} {employee} {how}")

        @rule(employee=st.sampled_from(EMPLOYEES), n=pick)
        def delete_in_advoware(self, employee: str, n: int) -> None:
            target = self._target(employee, "advoware", n, deleting=True)
            if target:
                item, termin = target
                self.user.delete_advoware(termin)
                item.actions.append(("advoware", "delete", ""))
                self.note(f"A- {item.token} {employee}")

        @rule(employee=st.sampled_from(EMPLOYEES), n=pick)
        def delete_in_google(self, employee: str, n: int) -> None:
            target = self._target(employee, "google", n, deleting=True)
            if target:
                item, event = target
                self.user.delete_google(self.calendars()[employee], event)
                item.actions.append(("google", "delete", ""))
                self.note(f"G- {item.token} {employee}")

        @rule(employee=st.sampled_from(EMPLOYEES), n=pick, delete_in=st.sampled_from(("advoware", "google", None)))
        def change_both_sides(self, employee: str, n: int, delete_in: str | None) -> None:
            """The same item changed on both sides between two runs: edited on both (a conflict), or
            deleted on one and edited on the other (the edit wins)."""
            side = self.side(employee)
            both = sorted(
                (t for t in side.advoware if t in side.google and t in self.items and t[0] == "T"),
                key=lambda t: int(t[1:]),
            )
            if not both:
                return
            tok = both[n % len(both)]
            item, termin, event = self.items[tok], side.advoware[tok][0], side.google[tok][0]
            calendar_id = self.calendars()[employee]
            if delete_in == "advoware":
                self.user.delete_advoware(termin)
            else:
                title = item.next_title()
                self.user.edit_advoware(termin, title, place=None, shift=0)
                item.actions.append(("advoware", "edit", title))
            if delete_in == "google":
                self.user.delete_google(calendar_id, event)
            else:
                title = item.next_title()
                self.user.edit_google(calendar_id, event, title, place=None, shift=0)
                item.actions.append(("google", "edit", title))
            if delete_in:
                item.actions.append((delete_in, "delete", ""))
            self.note(f"A/G {tok} {employee} delete in {delete_in}")

        # -- series: one occurrence, or the whole series ------------------------------------------------------
        @precondition(lambda self: self.synced_once)
        @rule(employee=st.sampled_from(EMPLOYEES), c=google_series)
        def create_series_in_google(self, employee: str, c: Content) -> None:
            calendar_id = self.calendars().get(employee)
            if not calendar_id:
                return
            item = self.new_item(employee)
            title = item.next_title()
            self.user.create_google(calendar_id, c, title)
            item.actions.append(("google", "create", title))
            self.note(f"G+ series {title} {employee}")

        def _series(self, employee: str, n: int) -> tuple[Item, dict[str, Any]] | None:
            """A series in Google (made in Advoware or in Google), picked by `n`."""
            found = sorted(
                (
                    (int(tok[1:]), tok, e)
                    for tok, recs in self.side(employee).google.items()
                    for e in recs
                    if e.get("recurrence") and tok in self.items
                ),
                key=lambda x: x[:2],
            )
            if not found:
                return None
            _, tok, master = found[n % len(found)]
            return self.items[tok], master

        @precondition(lambda self: self.synced_once)
        @rule(employee=st.sampled_from(EMPLOYEES), n=pick, k=st.integers(0, 5), hours=st.sampled_from((-2, 1, 3, 24)))
        def move_occurrence(self, employee: str, n: int, k: int, hours: int) -> None:
            """A person drags one occurrence of a series in Google ("this event")."""
            target = self._series(employee, n)
            if target:
                item, master = target
                shown = self.user.instances(self.calendars()[employee], master["id"])
                if shown:
                    self.user.move_occurrence(self.calendars()[employee], shown[k % len(shown)], hours)
                    item.actions.append(("google", "occurrence", ""))
                    self.note(f"G~1 {item.token} {employee} #{k % len(shown)} {hours:+d}h")

        @precondition(lambda self: self.synced_once)
        @rule(employee=st.sampled_from(EMPLOYEES), n=pick, k=st.integers(0, 5))
        def cancel_occurrence(self, employee: str, n: int, k: int) -> None:
            """A person deletes one occurrence of a series in Google ("this event")."""
            target = self._series(employee, n)
            if target:
                item, master = target
                shown = self.user.instances(self.calendars()[employee], master["id"])
                if len(shown) > 1:  # the last one gone would be the series gone (a deletion)
                    self.user.cancel_occurrence(self.calendars()[employee], shown[k % len(shown)])
                    item.actions.append(("google", "occurrence", ""))
                    self.note(f"G-1 {item.token} {employee} #{k % len(shown)}")

        @precondition(lambda self: self.synced_once)
        @rule(employee=st.sampled_from(EMPLOYEES), n=pick, how=st.sampled_from(("title", "later", "shorter", "longer")))
        def change_master_in_google(self, employee: str, n: int, how: str) -> None:
            """A person edits the whole series in Google ("all events")."""
            target = self._series(employee, n)
            if target:
                item, master = target
                title = item.next_title()
                self.user.change_master(self.calendars()[employee], master, title, how)
                item.actions.append(("google", "edit", title))
                self.note(f"G~* {title} {employee} {how}")

        @rule(employee=st.sampled_from(EMPLOYEES), n=pick, how=st.sampled_from(("later", "shorter", "longer")))
        def change_series_in_advoware(self, employee: str, n: int, how: str) -> None:
            """The whole series changed in Advoware (time or end), also after Google exceptions exist."""
            found = sorted(
                (int(tok[1:]), tok, t)
                for tok, recs in self.side(employee).advoware.items()
                for t in recs
                if t.get("dauertermin") and tok in self.items
            )
            if found:
                _, tok, termin = found[n % len(found)]
                item = self.items[tok]
                title = item.next_title()
                self.user.change_series_in_advoware(termin, title, how)
                item.actions.append(("advoware", "edit", title))
                self.note(f"A~* {title} {employee} {how}")

        @rule(policy=st.sampled_from(POLICIES))
        def set_policy(self, policy: str) -> None:
            self.ctx.settings.sync.conflict_policy = policy  # type: ignore[assignment]
            self.note(f"policy {policy}")

        @rule(on=st.booleans())
        def set_write_protection(self, on: bool) -> None:
            if on != self.wp:
                for item in self.items.values():
                    item.wp_changed = item.wp_changed or bool(item.actions)
            self.ctx.advoware.settings.write_protection = on
            self.note(f"write protection {on}")

        # -- sync runs -------------------------------------------------------------------------------------
        def _guarded(self, run: Any) -> Any:
            """Run `run()`; under write protection Advoware must not receive one write meanwhile."""
            before = _writes(cluster.advoware_url)
            protected = self.wp
            try:
                return run()
            finally:
                if protected:
                    assert _writes(cluster.advoware_url) == before, "a write reached write-protected Advoware"

        def _steps(self, stop_after: int | None = None) -> None:
            """The DAG's steps for every active employee; a failing employee leaves the others running,
            a failing phase leaves the rest of its plan pending (Airflow would retry it)."""
            self.taint()
            run_id = new_run_id("stateful")
            for employee in active_employees(self.ctx.advoware, self.ctx.hub):
                self.pending.pop(employee, None)
                try:
                    plan_id = prepare(self.ctx, run_id, employee, RunParams())["plan_id"]
                except Exception as exc:
                    self.note(f"  prepare {employee}: {type(exc).__name__}")
                    continue
                self.pending[employee] = (plan_id, 1)
                self._finish(employee, stop_after)

        def _finish(self, employee: str, stop_after: int | None = None) -> None:
            plan_id, first = self.pending[employee]
            for number in PHASES:
                if number < first:
                    continue
                if stop_after is not None and number > stop_after:
                    return
                try:
                    run_phase(self.ctx, plan_id, number)
                except Exception as exc:
                    self.note(f"  phase {number} {employee}: {type(exc).__name__}")
                    return
                self.pending[employee] = (plan_id, number + 1)
            finalize(self.ctx, plan_id)
            del self.pending[employee]

        @rule(data=st.data(), kind=st.sampled_from(("faults", "crash", "partial", "glitch")))
        def interrupted_sync(self, data: st.DataObject, kind: str) -> None:
            """A run that does not go through: API faults, a killed worker, a stopped DAG run, a glitch."""
            if kind == "faults":
                self.faulty_sync(
                    data.draw(st.lists(fault_specs, max_size=2), label="google"),
                    data.draw(st.lists(advoware_fault_specs, max_size=1), label="advoware"),
                )
            elif kind == "crash":
                self.crashing_sync(
                    data.draw(st.integers(1, 25), label="call"),
                    data.draw(st.booleans(), label="after"),
                    data.draw(st.booleans(), label="writes_only"),
                )
            elif kind == "partial":
                stop_after = data.draw(st.integers(0, 3), label="stop_after")
                self.note(f"sync stopped after phase {stop_after}")
                self._guarded(lambda: self._steps(stop_after))
            elif self.synced_once:
                self.empty_listing_glitch(data.draw(st.sampled_from(EMPLOYEES), label="employee"))
            self.synced_once = True

        def faulty_sync(self, google: list[dict], advoware: list[dict]) -> None:
            faults(cluster.google_url, *google)
            faults(cluster.advoware_url, *advoware)
            self.note(f"faulty sync google={google} advoware={advoware}")
            try:
                self._guarded(self._steps)
            finally:
                faults(cluster.google_url)
                faults(cluster.advoware_url)

        def crashing_sync(self, n: int, after: bool, writes_only: bool = False) -> None:
            """The worker is killed at its n-th API call, or n-th write (before it was sent, or after the
            answer came back)."""
            self.note(f"crash at {'write' if writes_only else 'call'} {n} ({'after' if after else 'before'} it)")
            calls = [0]

            def is_write(a: tuple[Any, ...], kw: dict[str, Any]) -> bool:
                if a and isinstance(a[0], str):  # Advoware: _send(method, path, ...)
                    return a[0] != "GET"
                what = str(kw.get("operation") or (a[1] if len(a) > 1 else "batch"))  # Google: execute*(.., op)
                return what == "batch" or what.split(".")[-1] in ("insert", "patch", "update", "delete")

            def wrap(real: Any) -> Any:
                def call(*a: Any, **kw: Any) -> Any:
                    if writes_only and not is_write(a, kw):
                        return real(*a, **kw)
                    calls[0] += 1
                    if calls[0] == n and not after:
                        raise Crash()
                    result = real(*a, **kw)
                    if calls[0] == n:
                        raise Crash()
                    return result

                return call

            sessions = list(
                {
                    id(s): s for s in (self.ctx.google.session_for(f"{e.lower()}@kanzlei.example") for e in EMPLOYEES)
                }.values()
            )
            patched = [(self.ctx.advoware, "_send")] + [(s, m) for s in sessions for m in ("execute", "execute_batch")]
            for obj, name in patched:
                setattr(obj, name, wrap(getattr(obj, name)))
            try:
                self._guarded(self._steps)
            except Crash:
                self.note(f"  crashed ({calls[0]} calls)")
            finally:
                for obj, name in patched:
                    delattr(obj, name)  # back to the class's method

        def empty_listing_glitch(self, employee: str) -> None:
            """Advoware answers one employee's listing empty once: nothing of theirs may be deleted."""
            self.note(f"empty Termine.list glitch for {employee}")
            calendar_id = self.calendars().get(employee)
            cancelled = self.cancelled(calendar_id)
            writes = stats(cluster.advoware_url)["by_principal"].get(employee, {}).get("writes", 0)
            faults(
                cluster.advoware_url, {"match": "Termine.list", "kind": "empty_list", "count": 1, "principal": employee}
            )
            try:
                self._guarded(self._steps)
            finally:
                faults(cluster.advoware_url)
            assert self.cancelled(calendar_id) == cancelled, ("Google events deleted on an empty listing", self.log)
            assert stats(cluster.advoware_url)["by_principal"].get(employee, {}).get("writes", 0) == writes, (
                "Advoware written on an empty listing",
                self.log,
            )

        def cancelled(self, calendar_id: str | None) -> set[str]:
            cals = _http.get(f"{cluster.google_url}/_sandbox/state").json()["calendars"]
            return {
                e["id"] for c in cals if c["id"] == calendar_id for e in c["events"] if e.get("status") == "cancelled"
            }

        @precondition(lambda self: bool(self.pending))
        @rule()
        def retry_pending(self) -> None:
            """Airflow retries the failed task: the rest of the stored (possibly stale) plan."""
            self.note(f"retry pending {self.pending}")
            self.taint()

            def run() -> None:
                for employee in sorted(self.pending):
                    self._finish(employee)

            self._guarded(run)

        @rule()
        def clean_sync(self) -> None:
            self.note(f"clean sync (write protection {self.wp}, {self.ctx.settings.sync.conflict_policy})")

            def run() -> dict[str, dict[str, Any]]:  # runner.sync_all without its catch: a failure shows itself
                run_id = new_run_id("clean")
                return {
                    e: sync_employee(self.ctx, run_id, e, RunParams())
                    for e in active_employees(self.ctx.advoware, self.ctx.hub)
                }

            for attempt in range(3):
                try:
                    results = self._guarded(run)
                    break
                except psycopg.OperationalError as exc:  # the shared PostgreSQL refused (e.g. too many clients)
                    self.note(f"  hub unavailable ({str(exc)[:80]}): the run counts as interrupted, again")
                    self.taint()
                    if attempt == 2:
                        raise
            assert {r["status"] for r in results.values()} == {"success"}, (results, self.log)
            self.pending.clear()
            self.synced_once = True
            self.check_converged()
            writes = (_writes(cluster.advoware_url), _writes(cluster.google_url))
            _, again = self._guarded(lambda: sync_all(self.ctx))
            assert {r["status"] for r in again.values()} == {"success"}, again
            assert (_writes(cluster.advoware_url), _writes(cluster.google_url)) == writes, (
                "a second run over unchanged data wrote",
                self.log,
            )

        def teardown(self) -> None:
            try:
                if self.synced_once or any(i.actions for i in self.items.values()):
                    self.clean_sync()
            finally:
                self.ctx.close()
                self.user.advoware.close()

        # -- the invariants after a clean run ----------------------------------------------------------------
        def check_converged(self) -> None:
            for employee in EMPLOYEES:
                self.check_employee(employee, self.side(employee))

        def check_employee(self, employee: str, now: Side) -> None:
            where = f"{employee}: {self.log}"
            for tok, recs in now.advoware.items():
                assert len(recs) == 1, (f"{tok} {len(recs)}x in Advoware", where)
            for tok, recs in now.google.items():
                assert len(recs) == 1, (f"{tok} {len(recs)}x in Google", where)
            frnrs = Counter(marker_of(e)[1] for recs in now.google.values() for e in recs if marker_of(e)[1])
            assert all(n == 1 for n in frnrs.values()), ("two Google events for one frNr", frnrs, where)
            for tok, (termin,) in now.advoware.items():
                assert tok in now.google, (f"{tok} is in Advoware only", where)
                (event,) = now.google[tok]
                assert marker_of(event)[1] == termin["frNr"], (f"{tok} linked to another frNr", where)
                assert _canon(from_advoware(termin, employee)) == _canon(from_google(event)), (
                    f"{tok} differs between the sides",
                    termin,
                    event,
                    where,
                )
            held_back = self.check_exceptions(employee, now, where)
            for tok, (event,) in now.google.items():
                if tok not in now.advoware:
                    assert (
                        (self.wp or event["id"] in held_back) and marker_of(event)[1] is None and tok in self.items
                    ), (f"{tok} is in Google only", event, where)
            for item in self.items.values():
                if item.employee == employee:
                    self.check_item(item, now, where)

        def check_exceptions(self, employee: str, now: Side, where: str) -> set[str]:
            """Every exception that deviates from its series (cancelled, moved, another title or place,
            or no occurrence of it any more) is standing in the hub, and nothing else is; none stands
            beside a linked series that is no occurrence of it; under write protection none stands in
            a linked series. Returns the unlinked Google series held back by their exceptions."""
            calendar_id = self.calendars()[employee]
            deviating: set[str] = set()
            held_back: set[str] = set()
            for tok, recs in now.google.items():
                for master in recs:
                    if not master.get("recurrence"):
                        continue
                    linked = marker_of(master)[1] is not None
                    found = _deviations(master, self.user.instances(calendar_id, master["id"], show_deleted=True))
                    orphans = {iid for iid, kind in found.items() if kind == "orphan"}
                    assert not (linked and orphans), (f"{tok}: exceptions beside the series", orphans, where)
                    assert not (linked and self.wp and found), (
                        f"{tok}: deviation under write protection",
                        found,
                        where,
                    )
                    deviating |= set(found)
                    if found and not linked:
                        held_back.add(master["id"])
            with psycopg.connect(cluster.hub) as conn:
                standing = {
                    r[0]
                    for r in conn.execute(
                        "SELECT instance_id FROM series_exceptions WHERE employee = %s AND status = 'standing'",
                        (employee,),
                    ).fetchall()
                }
            assert deviating == standing, ("exceptions in Google vs. standing in the hub", deviating, standing, where)
            if standing:
                event(f"series exceptions standing after a clean run ({timing_model})")
            if held_back:
                event("a Google series held back by its exceptions")
            return held_back

        def check_item(self, item: Item, now: Side, where: str) -> None:
            in_a, in_g = item.token in now.advoware, item.token in now.google
            alive = in_a or in_g
            title = (now.advoware.get(item.token) or now.google.get(item.token) or [{}])[0]
            title = title.get("text") or title.get("summary")
            if item.actions and {kind for _, kind, _ in item.actions} == {"occurrence"} and item.shape:
                termine = now.advoware.get(item.token) or []
                assert [_shape(t) for t in termine] == [item.shape], (
                    f"{item.token}: the Advoware series changed with one occurrence",
                    termine,
                    item,
                    where,
                )
            expected_alive, expected_title = self.expect(item)
            assert expected_alive is None or alive == expected_alive, (
                f"{item.token} {'gone' if not alive else 'still there'}",
                item,
                where,
            )
            assert expected_title is None or not alive or title == expected_title, (
                f"{item.token} holds {title!r}, expected {expected_title!r}",
                item,
                where,
            )
            # the converged state is where the next interval starts
            item.alive, item.title, item.google_only = alive, title, in_g and not in_a
            item.shape = _shape(now.advoware[item.token][0]) if in_a else None
            item.actions.clear()
            item.dirty = item.wp_changed = False

        def expect(self, item: Item) -> tuple[bool | None, str | None]:
            """(alive?, title?) after a clean run, None where the person's actions do not decide it.
            A change of one occurrence changes neither: the item is its series."""
            actions = [a for a in item.actions if a[1] != "occurrence"]
            if not actions:
                return item.alive, item.title  # untouched: as it was
            deleted = {side for side, kind, _ in actions if kind == "delete"}
            touched = {side for side, _, _ in actions}
            last = {side: t for side, kind, t in actions if kind != "delete"}
            protected = self.wp or item.read_only
            unlinked = item.google_only or not item.alive  # new in this interval, or left alone in Google
            if deleted == {"advoware", "google"}:
                return False, None
            if deleted and unlinked and touched == deleted:
                # made and deleted on one side; a run in between under write protection may revert it
                return (False, None) if not item.dirty or not (protected or item.wp_changed) else (None, None)
            if not deleted:  # nothing a person did not delete may be gone
                stable = not item.wp_changed
                if unlinked and "advoware" not in last:
                    return True, last.get("google") if stable else None  # a person's Google event
                if len(last) == 1 and stable:
                    ((side, t),) = last.items()
                    return True, (item.title if side == "google" and protected else t)
                if len(last) == 2 and stable and not item.dirty:
                    return True, last[self.winner(item, protected)]
                return True, None
            if item.dirty or item.wp_changed or unlinked:
                return None, None  # a run in between may have carried part of it across
            (gone,) = deleted
            other = "google" if gone == "advoware" else "advoware"
            if protected:
                if gone == "advoware":
                    return False, None
                return True, last.get("advoware", item.title)  # a Google deletion is reverted
            return (True, last[other]) if other in last else (False, None)  # the edit wins

        def winner(self, item: Item, protected: bool) -> str:
            policy = self.ctx.settings.sync.conflict_policy
            if protected or policy == "advoware_wins":
                return "advoware"
            if policy == "google_wins":
                return "google"
            order = [side for side, kind, _ in item.actions if kind not in ("delete", "occurrence")]
            return order[-1]

        @invariant()
        def no_duplicate_tokens(self) -> None:
            """At any moment (not only after a clean run) no side holds an item twice."""
            for employee in EMPLOYEES:
                now = self.side(employee)
                for name, found in (("Advoware", now.advoware), ("Google", now.google)):
                    dup = {tok: len(r) for tok, r in found.items() if len(r) > 1}
                    assert not dup, (f"duplicated in {name}", dup, self.log)

    return CalendarSyncMachine


@pytest.mark.parametrize("timing_model", TIMING_MODELS)
def test_calendar_sync_state_machine(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path, timing_model: str
) -> None:
    machine = build_machine(Cluster(advoware_url, google_url, redis_url, hub, tmp_path), timing_model)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=int(os.environ.get("STATEFUL_EXAMPLES", "15")),
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
