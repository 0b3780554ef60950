"""Applying the plan's actions to Advoware: creates, updates and deletions of one employee's Termine.

Crash safety:
- Creates: an intent row (Google event id + content fingerprint) is committed before the POST and
  completed with the new frNr right after it. A later attempt that finds an open intent first looks
  in the employee's window for an unlinked appointment with that fingerprint and adopts it; only if
  there is none the POST is repeated. The intent is removed once the link is stored.
- Updates and deletes re-read the appointment first: if `zuletztGeaendertAm` moved since the plan,
  the item is skipped (the next run plans it against the fresher edit).
"""

from __future__ import annotations

import logging
from typing import Any

from include.advoware.errors import AdvowareNotFound
from include.calendar_engine.mapping_advoware import changed_at_of, frnr_of
from include.calendar_engine.mapping_google import is_cancelled
from include.calendar_engine.marker import ORIGIN_GOOGLE, marker_properties
from include.calendar_engine.plan import CreateAdvoware, DeleteAdvoware, Plan, UpdateAdvoware
from include.calendar_sync.apply_google import GoogleApplier
from include.calendar_sync.bookkeeping import Applied, Bookkeeping, Skip, advoware_fp
from include.calendar_sync.context import SyncContext
from include.calendar_sync.intents import created_before
from include.google_calendar.writing import WriteOp
from include.hub import intents as hub_intents
from include.hub import links as hub_links

log = logging.getLogger(__name__)


class AdvowareApplier:
    def __init__(self, ctx: SyncContext, book: Bookkeeping, google: GoogleApplier, plan: Plan) -> None:
        self.ctx = ctx
        self.book = book
        self.google = google  # a create marks its Google event; a deletion confirms it is gone there
        self.plan = plan
        self.employee = book.employee

    def _fresh_termin(self, frnr: int, planned_changed_at: str | None) -> dict[str, Any] | None:
        """Re-read before a write; skip if someone changed it since the plan."""
        termin = self.ctx.advoware.get_termin(frnr)
        if termin is not None and changed_at_of(termin) != planned_changed_at:
            raise Skip("changed in Advoware since the plan (zuletztGeaendertAm moved)")
        return termin

    def update(self, a: UpdateAdvoware) -> Applied:
        if self._fresh_termin(a.frnr, a.advoware_changed_at) is None:
            raise Skip("gone from Advoware since the plan")
        record = self.ctx.advoware.update_termin(a.frnr, a.advoware_body)
        if not record:
            record = self.ctx.advoware.get_termin(a.frnr)
        self.book.save(
            a,
            advoware_fp=advoware_fp(record, self.employee, a.advoware_fingerprint),
            changed_at=changed_at_of(record or {}) or a.advoware_changed_at,
            audit_method="PUT",
        )
        return Applied("put")

    def delete(self, a: DeleteAdvoware) -> Applied:
        if a.confirm_absent == "google":
            event = self.google.writer.get(a.google_event_id)
            if event is not None and not is_cancelled(event):
                raise Skip("still in Google")
        outcome = "deleted"
        if self._fresh_termin(a.frnr, a.advoware_changed_at) is None:
            outcome = "already_deleted"
        else:
            try:
                self.ctx.advoware.delete_termin(a.frnr)
            except AdvowareNotFound:
                outcome = "already_deleted"
        self.book.mark_deleted(a, audit_method="DELETE" if outcome == "deleted" else None)
        return Applied(outcome)

    def create(self, a: CreateAdvoware) -> Applied:
        """POST (or recover an earlier POST), then mark the Google event with the new frNr."""
        gid = a.google_event_id
        assert a.advoware_fingerprint is not None
        with self.book.tx() as conn:  # committed before the POST: a crash after it leaves a trace
            intent = hub_intents.begin_intent(conn, self.employee, gid, a.advoware_fingerprint)
        frnr: int | None = None
        record: dict[str, Any] | None
        detail = "created"
        if not intent.fresh:  # a done intent names its frNr: never POST that appointment twice
            frnr = intent.frnr if intent.status == "done" else self._created_earlier(intent)
            detail = "recovered" if frnr is not None else "created again"
        if frnr is None:
            record = self.ctx.advoware.create_termin(a.advoware_body)
            frnr = frnr_of(record or {})
            if frnr is None:
                raise RuntimeError("Advoware answered the create without frNr")
            with self.book.tx() as conn:
                hub_intents.complete_intent(conn, intent.id, frnr)
                self.book.audit(conn, "POST", frnr, 200, a.kind)
        else:
            record = self.ctx.advoware.get_termin(frnr)
        # the Google event now carries its Advoware id (marker), so a lost hub can be rebuilt
        patch = {"extendedProperties": {"private": marker_properties(self.employee, frnr, ORIGIN_GOOGLE)}}
        r = self.google.writer.apply(WriteOp.patch(gid, patch))
        if not r.ok:
            raise RuntimeError(f"marker patch {r.outcome}: {r.error or ''}")
        self.book.save(
            a,
            frnr=frnr,
            advoware_fp=advoware_fp(record, self.employee, a.advoware_fingerprint),
            changed_at=changed_at_of(record or {}),
            google_event=r.event,
            extra=lambda conn: hub_intents.finish_intent(conn, intent.id),
        )
        return Applied(detail, frnr)

    def _created_earlier(self, intent: hub_intents.Intent) -> int | None:
        """After a crash around the POST (include/calendar_sync/intents.py decides which one)."""
        with self.book.tx() as conn:
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
