"""The executor's bookkeeping in the hub: one transaction per item, audit rows, idempotency of a
retried phase, failures and parking, and the outcomes the run report counts.

Every item's outcome goes into the hub in a transaction of its own (the link, its status, attempts
and last error, and an audit row for each Advoware write or refusal) on the task's hub connection
(`ctx.hub`, opened on first use, closed with the context); a broken connection is replaced at the
next item.

Parking: an item whose link has failed `SYNC_CALENDAR_MAX_ATTEMPTS` times (attempts count over task
tries and runs) is parked instead: the link stays 'failed', a dead letter (source 'calendar_sync',
ids only) is written in the same transaction, and the outcome is "parked", which does not fail the
phase, so one permanently rejected item cannot stall the employee's later phases and sync token.
Prepare leaves parked items out of the plan until the dead letter is replayed. Quota failures are
never parked (they say nothing about the item).

Outcome counts (per run and employee, for the report), keyed `<side>.<result>`: side google,
advoware or hub; result created, updated, deleted, adopted, linked, forgotten, skipped, failed,
parked.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from googleapiclient.errors import HttpError

from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.mapping_advoware import from_advoware
from include.calendar_engine.mapping_google import from_google
from include.calendar_engine.models import Appointment
from include.calendar_engine.plan import (
    ORPHAN,
    Action,
    Adopt,
    CreateAdvoware,
    CreateGoogle,
    EndsLink,
    HubLink,
    LinkWrite,
)
from include.calendar_sync.context import SyncContext
from include.google_calendar.errors import describe
from include.hub import audit, parking
from include.hub import links as hub_links
from include.hub.db import HubConnection

log = logging.getLogger(__name__)

ACTOR = "calendar_sync"


@dataclass(frozen=True)
class Applied:
    """What a handler did: a detail for the log line (ids and reasons, never a text), and the frNr a
    create in Advoware made."""

    detail: str
    frnr: int | None = None


class Skip(Exception):
    """The item is left for the next run (a reason, not an error)."""


@dataclass
class Outcome:
    action: Action
    result: str  # the kind's verb (its ActionKind), "skipped", "failed" or "parked"
    detail: str = ""

    @property
    def key(self) -> str:
        """`<side>.<result>`, e.g. google.created, advoware.skipped (the report's columns)."""
        return f"{self.action.spec.side}.{self.result}"


@dataclass
class PhaseResult:
    employee: str
    phase: int
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return dict(Counter(o.key for o in self.outcomes))

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == "failed"]

    @property
    def parked(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == "parked"]

    def summary(self) -> dict[str, Any]:
        """XCom-sized: counts and the failed and parked items' ids and reasons."""

        def ids(outcomes: list[Outcome]) -> list[dict[str, Any]]:
            return [
                {
                    "kind": o.action.kind,
                    "frnr": o.action.advoware_id,
                    "google_event_id": o.action.google_event_id,
                    "reason": o.detail,
                }
                for o in outcomes
            ]

        return {
            "employee": self.employee,
            "phase": self.phase,
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "failed": ids(self.failed),
            "parked": ids(self.parked),
        }


def reason_of(exc: BaseException) -> str:
    """Status and type only: never a body or an appointment text."""
    if isinstance(exc, HttpError):
        return describe(exc)
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}"


def google_fp(event: dict[str, Any] | None, planned: str | None) -> str | None:
    """Fingerprint of what Google holds now (falls back to the planned one)."""
    if event:
        parsed = from_google(event)
        if isinstance(parsed, Appointment):
            return fingerprint(parsed)
    return planned


def advoware_fp(record: dict[str, Any] | None, employee: str, planned: str | None) -> str | None:
    if record:
        try:
            return fingerprint(from_advoware(record, employee))
        except (TypeError, ValueError):
            pass
    return planned


class Bookkeeping:
    """The hub side of applying one employee's plan (one per phase task)."""

    def __init__(self, ctx: SyncContext, employee: str, run_id: str, planned_at: datetime | None) -> None:
        self.ctx = ctx
        self.employee = employee
        self.run_id = run_id
        self.planned_at = planned_at  # links saved after it were written by this plan

    def tx(self) -> contextlib.AbstractContextManager[HubConnection]:
        """One transaction (commit on success, rollback on error) on the task's hub connection."""
        return self.ctx.hub.transaction()

    def audit(self, conn: HubConnection, method: str, frnr: int | None, status: int | None, detail: str) -> None:
        audit.record(
            conn,
            audit.AuditEntry(
                actor=ACTOR,
                method=method,
                target=f"Termine/{frnr or 'new'}",
                status=status,
                request_id=self.run_id,
                employee=self.employee,
                detail=detail,
            ),
        )

    def refused(self, a: Action) -> None:
        """Advoware refused the write (write protection): an audit row, the item is skipped."""
        with self.tx() as conn:
            self.audit(conn, a.kind, a.advoware_id, None, "write_protected")

    def save(
        self,
        a: LinkWrite,
        *,
        changed_at: str | None,  # every link holds Advoware's stamp as last seen (None: not known)
        frnr: int | None = None,
        advoware_fp: str | None = None,
        google_fp: str | None = None,
        google_event: dict[str, Any] | None = None,
        audit_method: str | None = None,
        extra: Callable[[HubConnection], None] | None = None,
    ) -> None:
        """The success of one item: its link (and audit row) in one transaction. The values seen
        after the write (`frnr`, the fingerprints, `changed_at`, the event) win over the planned."""
        frnr = frnr if frnr is not None else a.advoware_id
        state = HubLink(
            employee=self.employee,
            frnr=frnr,
            google_event_id=a.google_event_id,
            advoware_fingerprint=advoware_fp or a.advoware_fingerprint,
            google_fingerprint=google_fp or a.google_fingerprint,
            advoware_changed_at=changed_at,
            google_updated=(google_event or {}).get("updated") or a.google_updated,
            google_etag=(google_event or {}).get("etag"),
            span_start=a.span_start,
            span_end=a.span_end,
        )
        with self.tx() as conn:
            hub_links.save_link(conn, state)
            if audit_method:
                self.audit(conn, audit_method, frnr, 200, a.kind)
            if extra is not None:
                extra(conn)

    def mark_deleted(self, a: EndsLink, *, audit_method: str | None = None) -> None:
        with self.tx() as conn:
            hub_links.mark_deleted(conn, self.employee, frnr=a.frnr, google_event_id=a.google_event_id)
            if audit_method:
                self.audit(conn, audit_method, a.frnr, 200, a.kind)

    def link_rows(self) -> list[dict[str, Any]]:
        """The employee's links, read once for many actions (only a retried phase needs them)."""
        if self.planned_at is None:
            return []
        with self.tx() as conn:
            return hub_links.link_rows(conn, self.employee)

    def already_applied(self, a: Action, rows: list[dict[str, Any]] | None = None) -> bool:
        """A retried phase: since the plan was made, the link was saved with what this action stores.
        (The time matters: a revert stores the fingerprints the link held before.) `rows`: the
        employee's links read once for many actions (else the action's link is read now)."""
        if self.planned_at is None:
            return False
        frnr = a.advoware_id
        if rows is not None:
            row = hub_links.first_matching(rows, frnr=frnr, google_event_id=a.google_event_id)
        else:
            with self.tx() as conn:
                row = hub_links.find_link(conn, self.employee, frnr=frnr, google_event_id=a.google_event_id)
        if row is None or row["updated_at"] < self.planned_at:
            return False
        if isinstance(a, EndsLink):
            return bool(row["status"] == "deleted" and row["frnr"] == frnr)
        if not isinstance(a, LinkWrite):
            return False  # a series exception is never its series' link
        created = isinstance(a, CreateAdvoware)  # its frNr is known only from the link it made
        return bool(
            row["status"] == "linked"
            and (row["frnr"] is not None if created else row["frnr"] == frnr)
            and row["google_event_id"] == a.google_event_id
            and (created or row["advoware_fingerprint"] == a.advoware_fingerprint)
            and row["google_fingerprint"] == a.google_fingerprint
        )

    def fail(self, a: Action, error: str, *, transient: bool = False) -> Outcome:
        """Count the failure on the item's link; at the maximum of attempts park it (see above).
        `transient`: a failure of the whole calendar (quota), never parked."""
        max_attempts = self.ctx.settings.sync.calendar_max_attempts
        with self.tx() as conn:
            # a create or an adoption of an unlinked item has no link yet to count on
            known = a.linked or not isinstance(a, (CreateGoogle, CreateAdvoware, Adopt))
            orphan = a.rule == ORPHAN  # an event without a link: counted on its Google id alone
            frnr = None if orphan else a.advoware_id
            attempts = hub_links.record_failure(
                conn,
                self.employee,
                frnr=frnr,
                google_event_id=a.google_event_id,
                error=error,
                known_link=known and not orphan,
            )
            letter = None
            if not transient and attempts >= max_attempts:
                letter = parking.park(
                    conn,
                    self.employee,
                    frnr=frnr,
                    google_event_id=a.google_event_id,
                    kind=a.kind,
                    error=error,
                    attempts=attempts,
                )
        if letter is not None:
            log.warning(
                "PARKED %s %s frNr=%s event=%s after %d attempts: %s (dead letter %d)",
                self.employee,
                a.kind,
                a.advoware_id,
                a.google_event_id,
                attempts,
                error,
                letter,
            )
            return Outcome(a, "parked", f"dead letter {letter}: {error}")
        log.warning(
            "FAILED %s %s frNr=%s event=%s (attempt %d of %d): %s",
            self.employee,
            a.kind,
            a.advoware_id,
            a.google_event_id,
            attempts,
            max_attempts,
            error,
        )
        return Outcome(a, "failed", error)

    def written(self, a: Action, applied: Applied) -> Outcome:
        """A write that went through: one INFO line with the ids (never a text), and its outcome."""
        log.info(
            "write %s %s frNr=%s event=%s: %s",
            self.employee,
            a.kind,
            applied.frnr if applied.frnr is not None else a.advoware_id,
            a.google_event_id,
            applied.detail,
        )
        return Outcome(a, a.spec.verb, applied.detail)
