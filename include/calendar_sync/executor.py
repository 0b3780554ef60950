"""Applies one phase of a stored plan through the clients, item by item, crash-safe.

The parts: `apply_google.py` (writes to Google), `apply_advoware.py` (writes to Advoware),
`series_writes.py` (series exceptions) and `bookkeeping.py` (the hub: one transaction per item,
audit, idempotency, failures and parking, outcomes). This module composes them: one typed dispatch
on the action's class (`PhaseExecutor.handle`, a handler table keyed by class), the inserts in
Google batched, the phase's outcome.

A failing item is recorded and the phase goes on; at the end `PhaseFailed` is raised if any item
failed, so Airflow retries the task. A retried phase skips items whose link already holds the
planned fingerprints (already applied).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, cast

from include.advoware.errors import WriteProtectedError
from include.calendar_engine import plan as kinds
from include.calendar_engine.plan import Action, ExceptionAction, Plan
from include.calendar_sync import series_writes
from include.calendar_sync.apply_advoware import AdvowareApplier
from include.calendar_sync.apply_google import GoogleApplier
from include.calendar_sync.bookkeeping import Applied, Bookkeeping, Outcome, PhaseResult, Skip, reason_of
from include.calendar_sync.context import PhaseFailed, SyncContext
from include.google_calendar.errors import QuotaExceeded
from include.hub import plans, runs

log = logging.getLogger(__name__)

__all__ = ["Outcome", "PhaseExecutor", "PhaseResult", "reason_of", "run_phase"]


A = TypeVar("A", bound=Action)
Handler = Callable[[Action], Applied]


def _on(kind: type[A], handler: Callable[[A], Applied]) -> tuple[type[Action], Handler]:
    """A row of the handler table: mypy checks that the handler takes exactly its class (the table
    is read by `type(a)`, so the cast only forgets what the lookup guarantees)."""
    return kind, cast(Handler, handler)


class PhaseExecutor:
    def __init__(self, ctx: SyncContext, plan: Plan, run_id: str, planned_at: datetime | None = None) -> None:
        self.plan = plan
        self.employee = plan.employee
        self.book = Bookkeeping(ctx, plan.employee, run_id, planned_at)
        self.google = GoogleApplier(ctx, self.book)
        self.advoware = AdvowareApplier(ctx, self.book, self.google, plan)
        self.ctx = ctx
        self.before: dict[str, dict[str, Any]] = {}  # kept exceptions as read before the phase ran
        self.handlers: dict[type[Action], Handler] = dict(
            [
                _on(kinds.CreateGoogle, self.google.create),
                _on(kinds.UpdateGoogle, self.google.update),
                _on(kinds.Adopt, self.google.adopt),
                _on(kinds.DeleteGoogle, self.google.delete),
                _on(kinds.CreateAdvoware, self.advoware.create),
                _on(kinds.UpdateAdvoware, self.advoware.update),
                _on(kinds.DeleteAdvoware, self.advoware.delete),
                _on(kinds.Link, self._link),
                _on(kinds.Forget, self._forget),
            ]
        )

    def run(self, number: int) -> PhaseResult:
        result = PhaseResult(self.employee, number, dry_run=self.plan.dry_run)
        actions = self.plan.phase(number)
        if self.plan.dry_run:
            result.outcomes = [Outcome(a, "skipped", "dry_run") for a in actions]
            return result
        batched = [a for a in actions if isinstance(a, kinds.CreateGoogle)]
        # read before this phase rewrites masters: what Google may remove then must be written again
        self.before = series_writes.read_before(self.google.writer, actions)
        quota: QuotaExceeded | None = None
        for a in actions:
            if not isinstance(a, kinds.CreateGoogle):
                result.outcomes.append(self.apply(a))
        if batched:
            try:
                result.outcomes.extend(self.google.create_batch(batched))
            except QuotaExceeded as exc:
                quota = exc
                done = {id(o.action) for o in result.outcomes}
                result.outcomes.extend(
                    self.book.fail(a, "quotaExceeded", transient=True) for a in batched if id(a) not in done
                )
        for label, outcomes in (("failed", result.failed), ("parked", result.parked)):
            for o in outcomes:
                log.warning(
                    "phase %d %s %s item: %s frNr=%s event=%s reason=%s",
                    number,
                    self.employee,
                    label,
                    o.action.kind,
                    o.action.advoware_id,
                    o.action.google_event_id,
                    o.detail,
                )
        log.info(
            "phase %d %s: %d actions, %s",
            number,
            self.employee,
            len(actions),
            " ".join(f"{k}={v}" for k, v in sorted(result.counts().items())) or "nothing to do",
        )
        if quota is not None:
            raise quota
        return result

    def handle(self, a: Action) -> Applied:
        """The one dispatch: the handler table, keyed by the action's class."""
        handler = self.handlers.get(type(a))
        if handler is None:
            raise TypeError(f"no handler for {type(a).__name__}")
        return handler(a)

    def _link(self, a: kinds.Link) -> Applied:
        self.book.save(a, changed_at=a.advoware_changed_at)
        return Applied("stored")

    def _forget(self, a: kinds.Forget) -> Applied:
        self.book.mark_deleted(a)
        return Applied("both sides gone")

    def apply(self, a: Action) -> Outcome:
        """One item: already applied → its verb; else call the handler and record the outcome."""
        if isinstance(a, ExceptionAction):
            return self._apply_exception(a)
        try:
            if self.book.already_applied(a):
                return Outcome(a, a.spec.verb, "already applied")
            return self.book.written(a, self.handle(a))
        except Skip as skip:
            log.info(
                "skipped %s %s frNr=%s event=%s: %s", self.employee, a.kind, a.advoware_id, a.google_event_id, skip
            )
            return Outcome(a, "skipped", str(skip))
        except WriteProtectedError:
            self.book.refused(a)
            return Outcome(a, "skipped", "write_protected")
        except QuotaExceeded:
            raise
        except Exception as exc:
            return self.book.fail(a, reason_of(exc))

    def _apply_exception(self, a: ExceptionAction) -> Outcome:
        """A series exception (include/calendar_sync/series_writes.py): its own row, never the link of
        its series; a failure counts there and is parked by the instance id alone."""
        try:
            before = self.before.get(a.google_event_id)
            result, detail = series_writes.apply(self.ctx, self.google.writer, self.employee, a, before)
        except series_writes.Skipped as skip:
            log.info("skipped %s %s frNr=%s event=%s: %s", self.employee, a.kind, a.frnr, a.google_event_id, skip)
            return Outcome(a, "skipped", str(skip))
        except QuotaExceeded:
            raise
        except Exception as exc:
            error = reason_of(exc)
            letter = series_writes.fail(self.ctx, self.employee, a, error)
            log.warning(
                "%s %s %s frNr=%s event=%s: %s",
                "PARKED" if letter else "FAILED",
                self.employee,
                a.kind,
                a.frnr,
                a.google_event_id,
                error,
            )
            return Outcome(a, "parked" if letter else "failed", f"dead letter {letter}: {error}" if letter else error)
        log.info(
            "write %s %s frNr=%s event=%s series=%s: %s",
            self.employee,
            a.kind,
            a.frnr,
            a.google_event_id,
            a.master_event_id,
            detail,
        )
        return Outcome(a, result, detail)


def run_phase(ctx: SyncContext, plan_id: int, number: int) -> dict[str, Any]:
    """Load plan `plan_id`, apply phase `number`, log and store the counts; raise if items failed."""
    with ctx.hub.transaction() as conn:
        stored = plans.load_plan(conn, plan_id)
    result = PhaseExecutor(ctx, stored.plan, stored.run_id, stored.created_at).run(number)
    summary = result.summary()
    failed = len(result.failed)  # parked items do not count: they wait for a replay
    status = None if result.dry_run else ("failed" if failed else "running")
    error = f"phase {number}: {failed} item(s) failed" if failed else None
    if result.parked:
        log.warning(
            "%s phase %d: %d item(s) parked as dead letters (kanzlei-sync dead-letters list --source calendar_sync)",
            stored.employee,
            number,
            len(result.parked),
        )
    with ctx.hub.transaction() as conn:
        runs.add_run_counts(
            conn, stored.run_id, stored.employee, {f"phase{number}": summary["counts"]}, status=status, error=error
        )
    if failed:
        raise PhaseFailed(
            f"{stored.employee} phase {number}: {failed} of {len(result.outcomes)} items failed "
            f"(recorded in the hub; the task retries)"
        )
    return summary
