"""The planner's last step: an action (or none) for every series exception it knows. Pure.

`plan_sync` calls `plan_exceptions` after its decision table, so the plan already says what happens
to each master this run (updated, reverted, deleted, adopted); the exceptions are judged against the
series as it will stand afterwards. The policy table is in series_exceptions.py; this module finds
each exception's series and hub row, and turns decisions into actions and reports (ids only).
"""

from __future__ import annotations

from typing import Any, Protocol

from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.mapping_google import from_google, to_google
from include.calendar_engine.marker import ORIGIN_ADVOWARE, marker_of
from include.calendar_engine.models import Appointment
from include.calendar_engine.plan import (
    Action,
    Adopt,
    CloseException,
    CreateGoogle,
    EndsLink,
    HubLink,
    KeepException,
    Plan,
    RevertException,
    UpdateAdvoware,
    UpdateGoogle,
)
from include.calendar_engine.policy import Policy
from include.calendar_engine.series_exceptions import (
    EXCEPTION_FIELDS,
    GONE,
    REVERTED,
    REVERTED_REPORT,
    STANDING,
    Decision,
    ExceptionItem,
    HubException,
    decide,
    deviation,
    occurrence_at,
    parse_original,
)

GOOGLE_SERIES_WRITES = (UpdateGoogle, CreateGoogle, Adopt)  # kinds that (re)write a master
UNLINKED = "unlinked_series"  # the rule of a row kept for a series the hub does not link (yet)


class Planner(Protocol):
    """What this step reads and writes of the planner (planner._Planner)."""

    employee: str
    policy: Policy
    plan: Plan
    exceptions: dict[str, ExceptionItem]
    rows: dict[str, HubException]

    def report(
        self, kind: str, *, frnr: int | None = None, google_event_id: str | None = None, detail: str = ""
    ) -> None: ...

    def add(self, action: Action | None) -> None: ...

    def comparable(self, appt: Appointment) -> dict[str, Any]: ...


def _series_after(master_id: str, a: Any, g: Any, actions: dict[str, Action]) -> tuple[Appointment | None, bool]:
    """(the series as it stands after this run, whether it is gone): what the plan writes to the
    master, else Google's master as listed, else Advoware's series (the master mirrors it)."""
    act = actions.get(master_id)
    if isinstance(act, EndsLink):
        return None, True
    if isinstance(act, GOOGLE_SERIES_WRITES) and act.google_body:
        parsed = from_google(act.google_body)
        return (parsed if isinstance(parsed, Appointment) else None), False
    if isinstance(act, UpdateAdvoware) and g is not None:
        return g.appt, False
    if g is not None and g.cancelled:
        return None, True
    if g is not None and g.appt is not None:
        return g.appt, False
    if a is not None and a.appt is not None:
        return a.appt, False
    return None, False


def standing_deviations(p: Planner, master_id: str, series: Appointment) -> bool:
    """Does a Google series hold exceptions (listed deviations or standing hub rows)?"""
    listed = [e for e in p.exceptions.values() if e.master_id == master_id]
    for e in listed:
        occ = occurrence_at(series, e.original)
        if (occ is None and not e.cancelled) or (occ is not None and deviation(e, occ, p.comparable)):
            return True
    seen = {e.id for e in listed}
    return any(r.standing for r in p.rows.values() if r.master_event_id == master_id and r.instance_id not in seen)


def plan_exceptions(
    p: Planner, live: list[HubLink], adv: dict[int, Any], goog: dict[str, Any], claimed: dict[int, str]
) -> None:
    """Actions for the exceptions listed and for the standing rows of a series that changes."""
    actions = {a.google_event_id: a for a in p.plan.actions() if a.google_event_id}
    twin = {gid: frnr for frnr, gid in claimed.items() if gid}  # master event id → its frNr
    masters = {e.master_id for e in p.exceptions.values()} | {r.master_event_id for r in p.rows.values() if r.standing}
    for master_id in sorted(masters):
        listed = sorted((e for e in p.exceptions.values() if e.master_id == master_id), key=lambda e: e.id)
        g = goog.get(master_id)
        frnr = twin.get(master_id)
        if frnr is None:
            _unlinked(p, master_id, g, listed)
            continue
        a = adv.get(frnr)
        if a is not None and a.excluded:
            continue
        act = actions.get(master_id)
        rewritten = isinstance(act, GOOGLE_SERIES_WRITES) and bool(act.google_body)
        if g is not None and g.appt is None and not g.cancelled and not rewritten:
            continue  # Google's master holds a rule Advoware cannot (reported): its exceptions are left alone
        series, gone = _series_after(master_id, a, g, actions)
        if gone or (g is not None and g.cancelled):
            # the series was deleted (Google deletes its exceptions with it; a recreated one has none)
            for row in _standing(p, master_id):
                _emit(p, Decision(CloseException, GONE), master_id, frnr, known=row)
            continue
        if series is None:
            continue  # not known this run (left the window, unreadable): the rows stand as they are
        protected = (
            p.policy.write_protection or frnr < 0 or bool(a is not None and a.appt is not None and a.appt.read_only)
        )
        # a master whose timing the run rewrites: Google may remove its exceptions then (its timing
        # model is not documented), so each one that stands is confirmed after the write, re-applied
        # where Google removed it
        retimed = rewritten and _retimed(g, series)
        for e in listed:
            occ = occurrence_at(series, e.original)
            known = p.rows.get(e.id)
            decision, kind = decide(e, occ, known, protected=protected, comparable=p.comparable)
            if decision.action is None and kind is not None and retimed and known is not None and known.standing:
                decision = Decision(KeepException, STANDING)  # known: confirmed, not reported again
            _emit(p, decision, master_id, frnr, exc=e, kind=kind, series=series, g=g, confirm=rewritten)
        seen = {e.id for e in listed}
        for row in _standing(p, master_id):
            if row.instance_id in seen:
                continue
            ghost = _ghost(row)
            occ = occurrence_at(series, ghost.original)
            if occ is None:
                # the series changed: a known exception whose original start it no longer has is an
                # orphan (it would show beside the new occurrences): removed, unless Google did it
                decision, _ = decide(ghost, None, row, protected=protected, comparable=p.comparable)
                _emit(p, decision, master_id, frnr, known=row)
            elif protected:
                # kept before write protection (or the series became read-only): Google must mirror
                # Advoware, so it is reverted although this listing did not return it
                revert = Decision(RevertException, REVERTED, REVERTED_REPORT, row.kind)
                _emit(p, revert, master_id, frnr, exc=ghost, known=row, series=series, g=g)
            elif retimed:
                keep = Decision(KeepException, STANDING)
                _emit(p, keep, master_id, frnr, exc=ghost, known=row, series=series, g=g, confirm=True)


def _retimed(g: Any, series: Appointment) -> bool:
    """Does the run change the series' timing (start, length, rule)? Unknown (Google's master not
    listed this run) counts as changed: confirming costs a read, missing it loses an exception."""
    before = g.appt if g is not None else None
    if before is None:
        return True
    return (before.start, before.end, before.all_day, before.recurrence) != (
        series.start,
        series.end,
        series.all_day,
        series.recurrence,
    )


def _standing(p: Planner, master_id: str) -> list[HubException]:
    return sorted(
        (r for r in p.rows.values() if r.master_event_id == master_id and r.standing), key=lambda r: r.instance_id
    )


def _ghost(row: HubException) -> ExceptionItem:
    """A known exception the listing did not return, standing as the hub last saw it."""
    return ExceptionItem(
        raw={},
        id=row.instance_id,
        master_id=row.master_event_id,
        original=parse_original(row.original_start),
        cancelled=row.kind == "cancelled",
        appt=None,
    )


def _unlinked(p: Planner, master_id: str, g: Any, listed: list[ExceptionItem]) -> None:
    """A series the hub does not link: its exceptions are recorded (they keep it out of Advoware
    while they stand, see the planner's unlinked Google events), nothing is written to Google."""
    if g is None or g.cancelled or g.appt is None:
        return
    for e in listed:
        occ = occurrence_at(g.appt, e.original)
        stands = (occ is None and not e.cancelled) or (occ is not None and deviation(e, occ, p.comparable))
        row = p.rows.get(e.id)
        if stands and not (row is not None and row.standing and row.fingerprint == e.fp):
            _emit(
                p,
                Decision(KeepException, STANDING),
                master_id,
                None,
                exc=e,
                kind="moved" if occ is None else deviation(e, occ, p.comparable),
                rule=UNLINKED,
            )
        elif not stands and row is not None and row.standing:
            _emit(p, Decision(CloseException, GONE), master_id, None, exc=e, kind=row.kind, rule=UNLINKED)


def _emit(
    p: Planner,
    decision: Decision,
    master_id: str,
    frnr: int | None,
    *,
    exc: ExceptionItem | None = None,
    known: HubException | None = None,
    kind: str | None = None,
    series: Appointment | None = None,
    g: Any = None,
    rule: str | None = None,
    confirm: bool = False,
) -> None:
    """The decision's action and report (ids only: the series' frNr and master, the instance id).
    `confirm`: the plan rewrites the series first, and Google may drop the exception then (its timing
    model): a kept one carries its occurrence (`google_body`) and the exception (`exception_body`:
    its mapped fields as listed; None when not listed and not a cancellation), so the executor records
    what stands after the rewrite and re-applies it where Google removed it. `known`: the hub row of a
    standing exception this listing did not return (its ids and kind; its fingerprint, kept where
    confirmed); `exc` is then its ghost (a revert or a confirmation) or None."""
    action = decision.action
    if action is None:
        return
    if known is not None:
        iid, kind = known.instance_id, known.kind
        original_start = exc.original_start if exc is not None else known.original_start
    else:
        assert exc is not None
        iid, original_start = exc.id, exc.original_start
    common: dict[str, Any] = {
        "rule": rule or (decision.detail or action.spec.name),
        "employee": p.employee,
        "frnr": frnr,
        "google_event_id": iid,
        "master_event_id": master_id,
        "original_start": original_start,
        "exception_kind": kind,
    }
    google_fp = exc.fp if exc is not None and exc.raw else (known.fingerprint if known and confirm else None)
    if action is RevertException:
        assert exc is not None and series is not None
        body, google_fp = _occurrence_body(p, series, exc, frnr, g)
        p.add(RevertException(google_body=body, google_fingerprint=google_fp, **common))
    elif action is KeepException:
        kept, again = None, None
        if confirm and exc is not None and series is not None:
            kept, _ = _occurrence_body(p, series, exc, frnr, g)
            again = _exception_body(exc)
        p.add(KeepException(google_body=kept, exception_body=again, google_fingerprint=google_fp, **common))
    else:
        p.add(action(google_fingerprint=google_fp, **common))
    if decision.report is not None:
        p.report(
            decision.report,
            frnr=frnr,
            google_event_id=iid,
            detail=f"{decision.detail}; series {master_id}" if decision.detail else f"series {master_id}",
        )


def _exception_body(exc: ExceptionItem) -> dict[str, Any] | None:
    """What re-applies the exception: a cancellation, or its mapped fields as listed (None: unknown)."""
    if exc.cancelled:
        return {"status": "cancelled"}
    if not exc.raw:
        return None
    return {k: exc.raw[k] for k in EXCEPTION_FIELDS if k in exc.raw}


def _occurrence_body(
    p: Planner, series: Appointment, exc: ExceptionItem, frnr: int | None, g: Any
) -> tuple[dict[str, Any], str]:
    """The instance as the series has it (a revert writes this; a cancelled one is restored)."""
    occ = occurrence_at(series, exc.original)
    assert occ is not None
    origin = marker_of(exc.raw)[2] or (g.m_origin if g is not None and g.m_origin else None) or ORIGIN_ADVOWARE
    body = to_google(occ, employee=p.employee, frnr=frnr, origin=origin, anonymize=p.policy.anonymize, google_id=exc.id)
    body["status"] = "confirmed"
    written = from_google({k: v for k, v in body.items() if k != "id"})
    assert isinstance(written, Appointment)
    return body, fingerprint(written)
