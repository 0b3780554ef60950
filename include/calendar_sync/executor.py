"""Applies one phase of a stored plan through the clients, item by item, crash-safe.

Every item's outcome goes into the hub in a transaction of its own (the link, its status, attempts
and last error, and an audit row for each Advoware write or refusal); a failing item is recorded and
the phase goes on; at the end `PhaseFailed` is raised if any item failed, so Airflow retries the task.

Parking: an item whose link has failed `SYNC_CALENDAR_MAX_ATTEMPTS` times (attempts count over task
tries and runs) is parked instead: the link stays 'failed', a dead letter (source 'calendar_sync',
ids only) is written in the same transaction, and the outcome is "parked", which does not fail the
phase, so one permanently rejected item cannot stall the employee's later phases and sync token.
Prepare leaves parked items out of the plan until the dead letter is replayed. Quota failures are
never parked (they say nothing about the item).

Crash safety (a run killed anywhere and run again duplicates nothing and loses nothing):
- Google: events get deterministic ids; an insert that meets its own earlier insert (409) adopts it.
- Advoware creates: an intent row (Google event id + content fingerprint) is committed before the
  POST and completed with the new frNr right after it. A later attempt that finds an open intent
  first looks in the employee's window for an unlinked appointment with that fingerprint and adopts
  it; only if there is none the POST is repeated. The intent is removed once the link is stored.
- Advoware updates and deletes re-read the appointment first: if `zuletztGeaendertAm` moved since
  the plan, the item is skipped (the next run plans it against the fresher edit).
- Google updates (PUT) re-read the event first: if its `updated` moved and its content is no longer
  what the plan saw (listed, or the link's in an incremental run), the item is skipped; the PUT
  carries If-Match with the etag just read, and a 412 skips the item too (a person's edit in Google
  is never overwritten by a retried phase).
- A retried phase skips items whose link already holds the planned fingerprints (already applied).

Hub connection: the task's (`ctx.hub`, opened on first use, closed with the context), every item
in a transaction of its own on it; a broken connection is replaced at the next item.

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

import psycopg
from googleapiclient.errors import HttpError

from include.advoware.errors import AdvowareNotFound, WriteProtectedError
from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.google_update import onto_current
from include.calendar_engine.mapping_advoware import changed_at_of, frnr_of, from_advoware, owner_code
from include.calendar_engine.mapping_google import from_google, is_cancelled
from include.calendar_engine.marker import ORIGIN_GOOGLE, marker_properties
from include.calendar_engine.models import Appointment
from include.calendar_engine.plan import EXCEPTION_KINDS, ORPHAN, Action, HubLink, Plan
from include.calendar_sync import series_writes
from include.calendar_sync.context import PhaseFailed, SyncContext
from include.calendar_sync.intents import created_before
from include.google_calendar.errors import QuotaExceeded, describe, error_info
from include.google_calendar.writing import SEND_UPDATES, EventWriter, WriteOp, WriteResult
from include.hub import audit, parking, plans, runs
from include.hub import intents as hub_intents
from include.hub import links as hub_links

log = logging.getLogger(__name__)

ACTOR = "calendar_sync"


@dataclass
class Outcome:
    action: Action
    result: str  # the kind's verb (ACTION_KINDS), "skipped", "failed" or "parked"
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
                    "frnr": o.action.frnr,
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


class _Skip(Exception):
    """The item is left for the next run (a reason, not an error)."""


def _google_fp(event: dict[str, Any] | None, planned: str | None) -> str | None:
    """Fingerprint of what Google holds now (falls back to the planned one)."""
    if event:
        parsed = from_google(event)
        if isinstance(parsed, Appointment):
            return fingerprint(parsed)
    return planned


def _advoware_fp(record: dict[str, Any] | None, employee: str, planned: str | None) -> str | None:
    if record:
        try:
            return fingerprint(from_advoware(record, employee))
        except (TypeError, ValueError):
            pass
    return planned


class PhaseExecutor:
    def __init__(self, ctx: SyncContext, plan: Plan, run_id: str, planned_at: datetime | None = None) -> None:
        self.ctx = ctx
        self.plan = plan
        self.run_id = run_id
        self.planned_at = planned_at  # links saved after it were written by this plan
        self.employee = plan.employee
        self._writer: EventWriter | None = None
        self._created_frnr: dict[int, int] = {}  # create_advoware: the frNr the write made (for its log line)

    # -- plumbing ------------------------------------------------------------------------------------
    @property
    def writer(self) -> EventWriter:
        if self._writer is None:
            session, calendar_id = self.ctx.calendar(self.employee)
            self._writer = EventWriter(session, calendar_id, batch_size=self.ctx.settings.google.batch_size)
        return self._writer

    def _tx(self) -> contextlib.AbstractContextManager[psycopg.Connection]:
        """One transaction (commit on success, rollback on error) on the task's hub connection."""
        return self.ctx.hub.transaction()

    def _audit(self, conn: psycopg.Connection, method: str, frnr: int | None, status: int | None, detail: str) -> None:
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

    def _save(
        self,
        a: Action,
        *,
        frnr: int | None = None,
        advoware_fp: str | None = None,
        google_fp: str | None = None,
        changed_at: str | None = None,
        google_event: dict | None = None,
        audit_method: str | None = None,
        extra: Callable[[psycopg.Connection], None] | None = None,
    ) -> None:
        """The success of one item: its link (and audit row) in one transaction."""
        frnr = frnr if frnr is not None else a.frnr
        state = HubLink(
            employee=self.employee,
            frnr=frnr,
            google_event_id=a.google_event_id,
            advoware_fingerprint=advoware_fp or a.advoware_fingerprint,
            google_fingerprint=google_fp or a.google_fingerprint,
            advoware_changed_at=changed_at or a.advoware_changed_at,
            google_updated=(google_event or {}).get("updated") or a.google_updated,
            google_etag=(google_event or {}).get("etag"),
            span_start=a.span_start,
            span_end=a.span_end,
        )
        with self._tx() as conn:
            hub_links.save_link(conn, state)
            if audit_method:
                self._audit(conn, audit_method, frnr, 200, a.kind)
            if extra is not None:
                extra(conn)

    def _already_applied(self, a: Action, rows: list[dict[str, Any]] | None = None) -> bool:
        """A retried phase: since the plan was made, the link was saved with what this action stores.
        (The time matters: a revert stores the fingerprints the link held before.) `rows`: the
        employee's links read once for many actions (else the action's link is read now)."""
        if self.planned_at is None:
            return False
        if rows is not None:
            row = hub_links.first_matching(rows, frnr=a.frnr, google_event_id=a.google_event_id)
        else:
            with self._tx() as conn:
                row = hub_links.find_link(conn, self.employee, frnr=a.frnr, google_event_id=a.google_event_id)
        if row is None or row["updated_at"] < self.planned_at:
            return False
        if a.kind in ("delete_google", "delete_advoware", "forget"):
            return row["status"] == "deleted" and row["frnr"] == a.frnr
        if a.kind == "create_advoware":
            return (
                row["status"] == "linked"
                and row["frnr"] is not None
                and row["google_event_id"] == a.google_event_id
                and row["google_fingerprint"] == a.google_fingerprint
            )
        return (
            row["status"] == "linked"
            and row["frnr"] == a.frnr
            and row["google_event_id"] == a.google_event_id
            and row["advoware_fingerprint"] == a.advoware_fingerprint
            and row["google_fingerprint"] == a.google_fingerprint
        )

    def _fail(self, a: Action, error: str, *, transient: bool = False) -> Outcome:
        """Count the failure on the item's link; at the maximum of attempts park it (see above).
        `transient`: a failure of the whole calendar (quota), never parked."""
        max_attempts = self.ctx.settings.sync.calendar_max_attempts
        with self._tx() as conn:
            known = a.linked or a.kind not in ("create_google", "create_advoware", "adopt")
            orphan = a.rule == ORPHAN  # an event without a link: counted on its Google id alone
            frnr = None if orphan else a.frnr
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
                a.frnr,
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
            a.frnr,
            a.google_event_id,
            attempts,
            max_attempts,
            error,
        )
        return Outcome(a, "failed", error)

    # -- the phase ---------------------------------------------------------------------------------
    def run(self, number: int) -> PhaseResult:
        return self._run(number)

    def _run(self, number: int) -> PhaseResult:
        result = PhaseResult(self.employee, number, dry_run=self.plan.dry_run)
        actions = self.plan.phase(number)
        if self.plan.dry_run:
            result.outcomes = [Outcome(a, "skipped", "dry_run") for a in actions]
            return result
        batched = [a for a in actions if a.kind == "create_google"]
        quota: QuotaExceeded | None = None
        for a in actions:
            if a.kind != "create_google":
                result.outcomes.append(self.apply(a))
        if batched:
            try:
                result.outcomes.extend(self._create_google_batch(batched))
            except QuotaExceeded as exc:
                quota = exc
                done = {id(o.action) for o in result.outcomes}
                result.outcomes.extend(
                    self._fail(a, "quotaExceeded", transient=True) for a in batched if id(a) not in done
                )
        for o in result.failed:
            log.warning(
                "phase %d %s failed item: %s frNr=%s event=%s reason=%s",
                number,
                self.employee,
                o.action.kind,
                o.action.frnr,
                o.action.google_event_id,
                o.detail,
            )
        for o in result.parked:
            log.warning(
                "phase %d %s parked item: %s frNr=%s event=%s reason=%s",
                number,
                self.employee,
                o.action.kind,
                o.action.frnr,
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

    def _written(self, a: Action, detail: str, frnr: int | None = None) -> Outcome:
        """A write that went through: one INFO line with the ids (never a text), and its outcome."""
        log.info(
            "write %s %s frNr=%s event=%s: %s",
            self.employee,
            a.kind,
            frnr if frnr is not None else a.frnr,
            a.google_event_id,
            detail,
        )
        return Outcome(a, a.spec.verb, detail)

    def apply(self, a: Action) -> Outcome:
        """One item: already applied → its verb; else call the handler and record the outcome."""
        if a.kind in EXCEPTION_KINDS:
            return self._apply_exception(a)
        try:
            if self._already_applied(a):
                return Outcome(a, a.spec.verb, "already applied")
            detail = getattr(self, f"_{a.kind}")(a) or ""
            return self._written(a, detail, self._created_frnr.pop(id(a), None))
        except _Skip as skip:
            log.info("skipped %s %s frNr=%s event=%s: %s", self.employee, a.kind, a.frnr, a.google_event_id, skip)
            return Outcome(a, "skipped", str(skip))
        except WriteProtectedError:
            with self._tx() as conn:
                self._audit(conn, a.kind, a.frnr, None, "write_protected")
            return Outcome(a, "skipped", "write_protected")
        except QuotaExceeded:
            raise
        except Exception as exc:
            return self._fail(a, reason_of(exc))

    def _apply_exception(self, a: Action) -> Outcome:
        """A series exception (include/calendar_sync/series_writes.py): its own row, never the link of
        its series; a failure counts there and is parked by the instance id alone."""
        try:
            result, detail = series_writes.apply(self.ctx, self.writer, self.employee, a)
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

    # -- Google ------------------------------------------------------------------------------------
    def _create_google_batch(self, actions: list[Action]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        todo: list[Action] = []
        rows: list[dict[str, Any]] = []
        if self.planned_at is not None:  # one query for the whole batch, not one per action
            with self._tx() as conn:
                rows = hub_links.link_rows(conn, self.employee)
        for a in actions:
            if self._already_applied(a, rows):
                outcomes.append(Outcome(a, a.spec.verb, "already applied"))
            else:
                todo.append(a)
        if not todo:
            return outcomes
        ops = [
            WriteOp.insert(a.google_event_id, a.google_body or {}, undelete=True, ref=i)  # type: ignore[arg-type]
            for i, a in enumerate(todo)
        ]
        try:
            # parallel batches share the per-user limiter's budget (write_many takes it under a lock);
            # the inserts are independent (own ids) and results come back in the order of `ops`
            results = self.writer.write_many(ops, parallel=self.ctx.settings.google.batch_parallel)
        except QuotaExceeded as exc:
            outcomes.extend(self._after_insert(todo[r.op.ref], r) for r in exc.results)
            raise
        except Exception as exc:  # the whole batch failed (transport, retries exhausted): not the items' fault
            return outcomes + [self._fail(a, reason_of(exc), transient=True) for a in todo]
        return outcomes + [self._after_insert(todo[r.op.ref], r) for r in results]

    def _after_insert(self, a: Action, r: WriteResult) -> Outcome:
        if r.outcome not in ("created", "adopted", "undeleted"):
            return self._fail(a, f"insert {r.outcome}: {r.error or ''}".strip())
        try:
            self._save(a, google_fp=_google_fp(r.event, a.google_fingerprint), google_event=r.event)
        except Exception as exc:
            return self._fail(a, reason_of(exc))
        return self._written(a, r.outcome)

    def _put(self, a: Action, *, guard: bool = False) -> dict[str, Any]:
        """Update (PUT) of the event: the event as Google holds it now with only the mapped fields
        replaced (include/calendar_engine/google_update.py), so nothing a person added that Advoware
        has no field for is lost; a missing event is inserted again (same id).
        `guard`: skip if a person changed the event in Google since the plan: its `updated` moved and
        its content is no longer what the plan saw (a change outside the mapping does not count, or it
        would block the item forever), or a 412 on the If-Match with the etag just read. Like the
        Advoware side's zuletztGeaendertAm check; the next run sees the change and applies the policy."""
        writer = self.writer
        current = writer.get(a.google_event_id)  # type: ignore[arg-type]
        etag: str | None = None
        if current is not None and current.get("status") != "cancelled":
            etag = current.get("etag")
            if guard and (a.google_updated is not None or a.google_seen_fingerprint is not None):
                same_stamp = a.google_updated is not None and current.get("updated") == a.google_updated
                if not same_stamp and (
                    a.google_seen_fingerprint is None or _google_fp(current, None) != a.google_seen_fingerprint
                ):
                    raise _Skip("changed in Google since the plan")
        body = onto_current(current, a.google_body or {})

        def update(s: Any) -> Any:
            # conferenceDataVersion / supportsAttachments: Google takes the call and the files as carried
            req = s.events().update(
                calendarId=writer.calendar_id,
                eventId=a.google_event_id,
                body=body,
                sendUpdates=SEND_UPDATES,
                conferenceDataVersion=1,
                supportsAttachments=True,
            )
            if etag:
                req.headers["If-Match"] = etag
            return req

        try:
            return writer.session.execute(update, "events.update")
        except HttpError as exc:
            status = error_info(exc).status
            if status == 412:
                raise _Skip("changed in Google since the plan (If-Match failed)") from None
            if status not in (404, 410):
                raise
        result = writer.insert(a.google_event_id, dict(a.google_body or {}), undelete=True)  # type: ignore[arg-type]
        return result.event or {}

    def _create_google(self, a: Action) -> str:
        r = self.writer.apply(WriteOp.insert(a.google_event_id, a.google_body or {}, undelete=True))  # type: ignore[arg-type]
        if r.outcome not in ("created", "adopted", "undeleted"):
            raise RuntimeError(f"insert {r.outcome}: {r.error or ''}")
        self._save(a, google_fp=_google_fp(r.event, a.google_fingerprint), google_event=r.event)
        return r.outcome

    def _update_google(self, a: Action) -> str:
        event = self._put(a, guard=True)
        self._save(a, google_fp=_google_fp(event, a.google_fingerprint), google_event=event)
        return "put"

    def _adopt(self, a: Action) -> str:
        event = self._put(a) if a.google_body else None
        self._save(a, google_fp=_google_fp(event, a.google_fingerprint), google_event=event)
        return "rewritten" if event else "linked"

    def _delete_google(self, a: Action) -> str:
        if a.confirm_absent == "advoware" and a.frnr is not None:
            termin = self.ctx.advoware.get_termin(a.frnr)
            if termin is not None and owner_code(termin).upper() == self.employee.upper():
                raise _Skip("still in Advoware (outside the window?)")
        r = self.writer.apply(WriteOp.delete(a.google_event_id))  # type: ignore[arg-type]
        if r.outcome not in ("deleted", "already_deleted"):
            raise RuntimeError(f"delete {r.outcome}: {r.error or ''}")
        with self._tx() as conn:
            hub_links.mark_deleted(conn, self.employee, frnr=a.frnr, google_event_id=a.google_event_id)
        return r.outcome

    # -- Advoware ----------------------------------------------------------------------------------
    def _fresh_termin(self, a: Action) -> dict[str, Any] | None:
        """Re-read before a write; skip if someone changed it since the plan."""
        termin = self.ctx.advoware.get_termin(a.frnr)  # type: ignore[arg-type]
        if termin is not None and changed_at_of(termin) != a.advoware_changed_at:
            raise _Skip("changed in Advoware since the plan (zuletztGeaendertAm moved)")
        return termin

    def _update_advoware(self, a: Action) -> str:
        if self._fresh_termin(a) is None:
            raise _Skip("gone from Advoware since the plan")
        record = self.ctx.advoware.update_termin(a.frnr, a.advoware_body or {})  # type: ignore[arg-type]
        if not record:
            record = self.ctx.advoware.get_termin(a.frnr)  # type: ignore[arg-type]
        self._save(
            a,
            advoware_fp=_advoware_fp(record, self.employee, a.advoware_fingerprint),
            changed_at=changed_at_of(record or {}),
            audit_method="PUT",
        )
        return "put"

    def _delete_advoware(self, a: Action) -> str:
        if a.confirm_absent == "google" and a.google_event_id:
            event = self.writer.get(a.google_event_id)
            if event is not None and not is_cancelled(event):
                raise _Skip("still in Google")
        outcome = "deleted"
        if self._fresh_termin(a) is None:
            outcome = "already_deleted"
        else:
            try:
                self.ctx.advoware.delete_termin(a.frnr)  # type: ignore[arg-type]
            except AdvowareNotFound:
                outcome = "already_deleted"
        with self._tx() as conn:
            hub_links.mark_deleted(conn, self.employee, frnr=a.frnr, google_event_id=a.google_event_id)
            if outcome == "deleted":
                self._audit(conn, "DELETE", a.frnr, 200, a.kind)
        return outcome

    def _create_advoware(self, a: Action) -> str:
        gid = a.google_event_id
        assert gid is not None and a.advoware_fingerprint is not None
        with self._tx() as conn:  # committed before the POST: a crash after it leaves a trace
            intent = hub_intents.begin_intent(conn, self.employee, gid, a.advoware_fingerprint)
        frnr: int | None = None
        detail = "created"
        if not intent.fresh:  # a done intent names its frNr: never POST that appointment twice
            frnr = intent.frnr if intent.status == "done" else self._created_earlier(intent)
            detail = "recovered" if frnr is not None else "created again"
        if frnr is None:
            record = self.ctx.advoware.create_termin(a.advoware_body or {})
            frnr = frnr_of(record or {})
            if frnr is None:
                raise RuntimeError("Advoware answered the create without frNr")
            with self._tx() as conn:
                hub_intents.complete_intent(conn, intent.id, frnr)
                self._audit(conn, "POST", frnr, 200, a.kind)
        else:
            record = self.ctx.advoware.get_termin(frnr)
        # the Google event now carries its Advoware id (marker), so a lost hub can be rebuilt
        patch = {"extendedProperties": {"private": marker_properties(self.employee, frnr, ORIGIN_GOOGLE)}}
        r = self.writer.apply(WriteOp.patch(gid, patch))
        if not r.ok:
            raise RuntimeError(f"marker patch {r.outcome}: {r.error or ''}")
        self._save(
            a,
            frnr=frnr,
            advoware_fp=_advoware_fp(record, self.employee, a.advoware_fingerprint),
            changed_at=changed_at_of(record or {}),
            google_event=r.event,
            extra=lambda conn: hub_intents.finish_intent(conn, intent.id),
        )
        self._created_frnr[id(a)] = frnr
        return detail

    def _created_earlier(self, intent: hub_intents.Intent) -> int | None:
        """After a crash around the POST (include/calendar_sync/intents.py decides which one)."""
        with self._tx() as conn:
            linked = hub_links.linked_frnrs(conn, self.employee)
        items = self.ctx.advoware.list_termine(self.employee, self.plan.window_start, self.plan.window_end)
        termin = created_before(intent, self.employee, items, linked)
        if termin is None:
            return None
        log.info(
            "create of %s event %s: adopting frNr=%s written before a crash",
            self.employee,
            intent.google_event_id,
            frnr_of(termin),
        )
        return frnr_of(termin)

    # -- bookkeeping only ------------------------------------------------------------------------------
    def _link(self, a: Action) -> str:
        self._save(a)
        return "stored"

    def _forget(self, a: Action) -> str:
        with self._tx() as conn:
            hub_links.mark_deleted(conn, self.employee, frnr=a.frnr, google_event_id=a.google_event_id)
        return "both sides gone"


def reason_of(exc: BaseException) -> str:
    """Status and type only: never a body or an appointment text."""
    if isinstance(exc, HttpError):
        return describe(exc)
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}"


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
