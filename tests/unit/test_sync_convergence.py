"""Property: a plan applied to an in-memory model of both sides converges.

The tiny applier below plays the executor's documented semantics (deterministic ids with undelete
on a cancelled id, marker patch after an Advoware create, confirm_absent, stale check). After
random user edits/deletes/creates on both sides and a sync: both sides match under the mapping,
nothing is duplicated, the next plan is empty, a write-protected Advoware got no write, and nothing
a user did not delete is gone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from include.calendar_engine import HubLink, Plan, Policy, Window, fingerprint, from_advoware, from_google, plan_sync
from include.calendar_engine.mapping_google import is_cancelled
from include.calendar_engine.marker import marker_properties
from include.calendar_engine.timeutil import BERLIN
from tests.unit.test_sync_mapping import TEXT, advoware_termin

EMP = "AB"
WINDOW = Window(date(2025, 1, 1), date(2025, 12, 31))
DAYS = (date(2025, 2, 1), date(2025, 11, 30))


@dataclass
class World:
    adv: dict[int, dict[str, Any]] = field(default_factory=dict)
    goog: dict[str, dict[str, Any]] = field(default_factory=dict)
    gseq: dict[str, int] = field(default_factory=dict)
    links: dict[str, HubLink] = field(default_factory=dict)  # by google event id
    clock: int = 0
    seq: int = 0
    synced_seq: int = 0
    next_frnr: int = 900_000
    adv_writes: int = 0

    # -- the two systems' own behaviour ------------------------------------------------------
    def tick(self) -> datetime:
        self.clock += 1
        return datetime(2025, 1, 15, tzinfo=UTC) + timedelta(minutes=self.clock)

    def put_adv(self, frnr: int, body: dict[str, Any]) -> None:
        stamp = self.tick().astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M:%S.%f")
        self.adv[frnr] = {**body, "frNr": frnr, "zuletztGeaendertAm": stamp}

    def put_goog(self, gid: str, body: dict[str, Any]) -> None:
        self.seq += 1
        self.gseq[gid] = self.seq
        self.goog[gid] = {
            **copy.deepcopy(body),
            "id": gid,
            "status": body.get("status", "confirmed"),
            "updated": self.tick().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }

    def google_listing(self, complete: bool) -> list[dict[str, Any]]:
        if complete:
            return [copy.deepcopy(e) for e in self.goog.values()]
        return [copy.deepcopy(e) for gid, e in self.goog.items() if self.gseq[gid] > self.synced_seq]

    def live(self, gid: str) -> bool:
        return gid in self.goog and not is_cancelled(self.goog[gid])

    # -- the executor, as documented in include/calendar_engine/plan.py ------------------------------------
    def record(self, act: Any, frnr: int, gid: str) -> None:
        self.links[gid] = HubLink(
            EMP,
            frnr,
            gid,
            act.advoware_fingerprint,
            act.google_fingerprint,
            self.adv.get(frnr, {}).get("zuletztGeaendertAm"),
            self.goog.get(gid, {}).get("updated"),
            span_start=act.span_start,
            span_end=act.span_end,
        )

    def apply(self, plan: Plan) -> None:
        assert plan.stop_reason is None
        for act in plan.actions():
            gid, frnr = act.google_event_id, act.advoware_id
            if act.kind in ("create_google", "update_google") or (act.kind == "adopt" and act.google_body):
                self.put_goog(gid, act.google_body)  # create on a cancelled id = undelete
            if act.kind in ("create_google", "update_google", "adopt", "link"):
                self.record(act, frnr, gid)
            elif act.kind == "delete_google":
                if act.confirm_absent == "advoware" and frnr in self.adv:
                    continue
                self.put_goog(gid, {"status": "cancelled"})
                self.links.pop(gid, None)
            elif act.kind == "create_advoware":
                frnr, self.next_frnr = self.next_frnr, self.next_frnr + 1
                self.adv_writes += 1
                self.put_adv(frnr, act.advoware_body)
                event = copy.deepcopy(self.goog[gid])
                props = event.setdefault("extendedProperties", {}).setdefault("private", {})
                props.update(marker_properties(EMP, frnr, "google"))
                self.put_goog(gid, event)
                self.record(act, frnr, gid)
            elif act.kind == "update_advoware":
                self.adv_writes += 1
                if self.adv[frnr]["zuletztGeaendertAm"] != act.advoware_changed_at:
                    continue  # stale: a fresher edit wins, next run
                self.put_adv(frnr, act.advoware_body)
                self.record(act, frnr, gid)
            elif act.kind == "delete_advoware":
                self.adv_writes += 1
                if act.confirm_absent == "google" and self.live(gid):
                    continue
                self.adv.pop(frnr, None)
                self.links.pop(gid, None)
            elif act.kind == "forget":
                self.links.pop(gid, None)

    def plan(self, policy: Policy, complete: bool) -> Plan:
        return plan_sync(
            list(self.links.values()),
            [copy.deepcopy(a) for a in self.adv.values()],
            self.google_listing(complete),
            complete,
            policy,
            WINDOW,
            employee=EMP,
        )

    def sync(self, policy: Policy, complete: bool) -> Plan:
        listed_seq = self.seq
        plan = self.plan(policy, complete)
        if plan.stop_reason is not None:
            # The safety stop withholds everything; an operator's override proceeds.
            assert plan.is_empty() and plan.withheld
            plan = self.plan(replace(policy, force_deletions=True), complete)
        for kind in {a.kind for a in plan.actions()}:
            event(kind)  # Hypothesis statistics: which decisions the examples exercised
        self.apply(plan)
        self.synced_seq = listed_seq
        return plan


def comparable(appt: Any, anonymize: bool) -> dict[str, Any]:
    content = appt.content()
    if anonymize:
        for key in ("title", "note", "location", "matter"):
            content.pop(key)
    return content


def google_event(draw: Any) -> dict[str, Any]:
    day = draw(st.dates(min_value=DAYS[0], max_value=DAYS[1]))
    if draw(st.booleans()):
        start = {"date": day.isoformat()}
        end = {"date": (day + timedelta(days=draw(st.integers(1, 5)))).isoformat()}
    else:
        begin = datetime(day.year, day.month, day.day, draw(st.integers(6, 20)), 0, tzinfo=BERLIN)
        start = {"dateTime": begin.isoformat(), "timeZone": "Europe/Berlin"}
        end = {
            "dateTime": (begin + timedelta(minutes=draw(st.sampled_from([30, 60, 90])))).isoformat(),
            "timeZone": "Europe/Berlin",
        }
    return {
        "summary": draw(TEXT),
        "description": draw(TEXT),
        "start": start,
        "end": end,
        "visibility": draw(st.sampled_from(["default", "private"])),
    }


OPS = st.lists(
    st.tuples(st.sampled_from(["edit_a", "edit_g", "del_a", "del_g", "new_a", "new_g"]), st.integers(0, 50), TEXT),
    max_size=8,
)
CONFLICT = st.sampled_from(["advoware_wins", "google_wins", "last_change_wins"])
POLICY = st.builds(
    Policy,
    conflict_policy=CONFLICT,
    write_protection=st.booleans(),
    anonymize=st.booleans(),
    force_deletions=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    policy=POLICY,
    complete=st.booleans(),
    n_adv=st.integers(0, 6),
    n_goog=st.integers(0, 3),
    legacy=st.booleans(),
    ops=OPS,
)
def test_plan_applied_converges(data, policy, complete, n_adv, n_goog, legacy, ops):
    world = World()
    for i in range(n_adv):
        raw = data.draw(
            advoware_termin(
                frnr=-(i + 1) if i == n_adv - 1 and i > 2 else 100 + i, kuerzel=EMP, day_range=DAYS, max_series_days=120
            )
        )
        world.adv[raw["frNr"]] = raw
    for i in range(n_goog):
        world.put_goog(f"user{i:04d}", google_event(data.draw))
    if legacy and world.adv:
        # a copy from the previous installation: same start, end, title, no marker
        first = min(world.adv)
        from include.calendar_engine.mapping_google import to_google

        body = to_google(from_advoware(world.adv[first], EMP), employee=EMP, frnr=first)
        body.pop("extendedProperties")
        body.pop("id")
        world.put_goog("legacy0001", body)

    # Run 1: a full initial sync.
    world.sync(policy, complete=True)
    check_converged(world, policy, complete)

    # Users act on both sides.
    before_links = dict(world.links)
    edited_a: set[int] = set()
    edited_g: set[str] = set()
    deleted_a: set[int] = set()
    deleted_g: set[str] = set()
    created_a: set[int] = set()
    created_g: set[str] = set()
    for op, idx, text in ops:
        adv_ids = sorted(world.adv)
        goog_ids = sorted(g for g in world.goog if world.live(g))
        if op == "edit_a" and adv_ids:
            frnr = adv_ids[idx % len(adv_ids)]
            world.put_adv(frnr, {**world.adv[frnr], "text": f"A {text} {idx}", "privat": idx % 2})
            edited_a.add(frnr)
        elif op == "del_a" and adv_ids:
            frnr = adv_ids[idx % len(adv_ids)]
            world.adv.pop(frnr)
            deleted_a.add(frnr)
        elif op == "edit_g" and goog_ids:
            gid = goog_ids[idx % len(goog_ids)]
            event = copy.deepcopy(world.goog[gid])
            event["summary"] = f"G {text} {idx}"
            if not event.get("recurrence") and idx % 3 == 0:
                for key in ("start", "end"):
                    if "date" in event[key]:
                        moved_day = date.fromisoformat(event[key]["date"]) + timedelta(days=1)
                        event[key]["date"] = moved_day.isoformat()
                    else:
                        moved = datetime.fromisoformat(event[key]["dateTime"]) + timedelta(hours=1)
                        event[key]["dateTime"] = moved.isoformat()
            world.put_goog(gid, event)
            edited_g.add(gid)
        elif op == "del_g" and goog_ids:
            gid = goog_ids[idx % len(goog_ids)]
            world.put_goog(gid, {"status": "cancelled"})
            deleted_g.add(gid)
        elif op == "new_a":
            frnr = 500 + idx
            if frnr not in world.adv:
                raw = data.draw(advoware_termin(frnr=frnr, kuerzel=EMP, day_range=DAYS, max_series_days=120))
                world.put_adv(frnr, raw)
                created_a.add(frnr)
        elif op == "new_g":
            gid = f"new{idx:04d}"
            if gid not in world.goog:
                world.put_goog(gid, google_event(data.draw))
                created_g.add(gid)

    writes_before = world.adv_writes
    world.sync(policy, complete)
    check_converged(world, policy, complete)
    if policy.write_protection:
        assert world.adv_writes == writes_before == 0

    # Nothing a user did not delete is gone.
    for frnr in created_a:
        if frnr not in deleted_a:
            assert frnr in world.adv
    for gid in created_g:
        if gid not in deleted_g:
            assert world.live(gid)
    for gid, link in before_links.items():
        frnr = link.frnr
        gone_a, gone_g = frnr in deleted_a, gid in deleted_g
        read_only = policy.write_protection or frnr < 0
        if not gone_a and not gone_g:
            assert frnr in world.adv and world.live(gid)
        elif gone_a and not gone_g:
            # the Google edit wins (recreated in Advoware) unless Advoware is protected
            assert world.live(gid) == (gid in edited_g and not read_only)
        elif gone_g and not gone_a:
            if frnr in edited_a or read_only:
                assert frnr in world.adv and world.live(gid)
            else:
                assert frnr not in world.adv
        else:
            assert frnr not in world.adv and not world.live(gid)


def check_converged(world: World, policy: Policy, complete: bool) -> None:
    # The next plan over the state after applying is empty (full listing and incremental).
    for listing in (True, False):
        again = world.plan(policy, listing)
        assert again.stop_reason is None
        assert again.is_empty(), again.counts()
    # Both sides match under the mapping; each item exactly once.
    frnrs = [lk.frnr for lk in world.links.values()]
    assert len(frnrs) == len(set(frnrs))
    assert set(frnrs) == set(world.adv)
    for gid, link in world.links.items():
        assert world.live(gid)
        a = from_advoware(world.adv[link.frnr], EMP)
        g = from_google(world.goog[gid])
        assert comparable(a, policy.anonymize) == comparable(g, policy.anonymize)
        assert fingerprint(a) == link.advoware_fingerprint and fingerprint(g) == link.google_fingerprint
    unlinked = [gid for gid in world.goog if world.live(gid) and gid not in world.links]
    # Only user-made Google events stay unlinked, and only under write protection.
    assert not unlinked or policy.write_protection
    for gid in unlinked:
        assert not world.goog[gid].get("extendedProperties", {}).get("private", {}).get("advowareFrNr")
