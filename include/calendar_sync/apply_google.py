"""Applying the plan's actions to Google: inserts (batched), updates, adoptions and deletions of
one employee's events.

Crash safety: events get deterministic ids, so an insert that meets its own earlier insert (409)
adopts it. Updates (PUT) re-read the event first: if its `updated` moved and its content is no
longer what the plan saw (listed, or the link's in an incremental run), the item is skipped; the PUT
carries If-Match with the etag just read, and a 412 skips the item too (a person's edit in Google is
never overwritten by a retried phase).
"""

from __future__ import annotations

from typing import Any

from googleapiclient.errors import HttpError

from include.calendar_engine.google_update import onto_current
from include.calendar_engine.mapping_advoware import owner_code
from include.calendar_engine.plan import Adopt, CreateGoogle, DeleteGoogle, UpdateGoogle
from include.calendar_sync.bookkeeping import Applied, Bookkeeping, Outcome, Skip, google_fp, reason_of
from include.calendar_sync.context import SyncContext
from include.google_calendar.errors import QuotaExceeded, error_info
from include.google_calendar.writing import SEND_UPDATES, EventWriter, WriteOp, WriteResult

INSERTED = ("created", "adopted", "undeleted")  # an insert's outcomes that leave the event in place


class GoogleApplier:
    def __init__(self, ctx: SyncContext, book: Bookkeeping) -> None:
        self.ctx = ctx
        self.book = book
        self._writer: EventWriter | None = None

    @property
    def writer(self) -> EventWriter:
        """The employee's calendar, opened on first use."""
        if self._writer is None:
            session, calendar_id = self.ctx.calendar(self.book.employee)
            self._writer = EventWriter(session, calendar_id, batch_size=self.ctx.settings.google.batch_size)
        return self._writer

    # -- inserts -----------------------------------------------------------------------------------
    def create(self, a: CreateGoogle) -> Applied:
        r = self.writer.apply(WriteOp.insert(a.google_event_id, a.google_body, undelete=True))
        if r.outcome not in INSERTED:
            raise RuntimeError(f"insert {r.outcome}: {r.error or ''}")
        self._save(a, r.event)
        return Applied(r.outcome)

    def create_batch(self, actions: list[CreateGoogle]) -> list[Outcome]:
        """The phase's inserts in batches; a QuotaExceeded is raised after the outcomes of the inserts
        that went through are recorded."""
        outcomes: list[Outcome] = []
        todo: list[CreateGoogle] = []
        rows = self.book.link_rows()  # one query for the whole batch, not one per action
        for a in actions:
            if self.book.already_applied(a, rows):
                outcomes.append(Outcome(a, a.spec.verb, "already applied"))
            else:
                todo.append(a)
        if not todo:
            return outcomes
        ops = [WriteOp.insert(a.google_event_id, a.google_body, undelete=True, ref=i) for i, a in enumerate(todo)]
        try:
            # parallel batches share the per-user limiter's budget (write_many takes it under a lock);
            # the inserts are independent (own ids) and results come back in the order of `ops`
            results = self.writer.write_many(ops, parallel=self.ctx.settings.google.batch_parallel)
        except QuotaExceeded as exc:
            outcomes.extend(self._after_insert(todo[r.op.ref], r) for r in exc.results)
            raise
        except Exception as exc:  # the whole batch failed (transport, retries exhausted): not the items' fault
            return outcomes + [self.book.fail(a, reason_of(exc), transient=True) for a in todo]
        return outcomes + [self._after_insert(todo[r.op.ref], r) for r in results]

    def _after_insert(self, a: CreateGoogle, r: WriteResult) -> Outcome:
        if r.outcome not in INSERTED:
            return self.book.fail(a, f"insert {r.outcome}: {r.error or ''}".strip())
        try:
            self._save(a, r.event)
        except Exception as exc:
            return self.book.fail(a, reason_of(exc))
        return self.book.written(a, Applied(r.outcome))

    def _save(self, a: CreateGoogle | UpdateGoogle | Adopt, event: dict[str, Any] | None) -> None:
        """The link of a write to Google: the event as written (None: as planned)."""
        self.book.save(
            a, google_fp=google_fp(event, a.google_fingerprint), changed_at=a.advoware_changed_at, google_event=event
        )

    # -- updates -----------------------------------------------------------------------------------
    def update(self, a: UpdateGoogle) -> Applied:
        event = self.put(a.google_event_id, a.google_body, guard=a)
        self._save(a, event)
        return Applied("put")

    def adopt(self, a: Adopt) -> Applied:
        event = self.put(a.google_event_id, a.google_body) if a.google_body else None
        self._save(a, event)
        return Applied("rewritten" if event else "linked")

    def put(self, gid: str, planned: dict[str, Any], *, guard: UpdateGoogle | None = None) -> dict[str, Any]:
        """Update (PUT) of the event: the event as Google holds it now with only the mapped fields
        replaced (include/calendar_engine/google_update.py), so nothing a person added that Advoware
        has no field for is lost; a missing event is inserted again (same id).
        `guard`: skip if a person changed the event in Google since that plan: its `updated` moved and
        its content is no longer what the plan saw (a change outside the mapping does not count, or it
        would block the item forever), or a 412 on the If-Match with the etag just read. Like the
        Advoware side's zuletztGeaendertAm check; the next run sees the change and applies the policy."""
        writer = self.writer
        current = writer.get(gid)
        etag: str | None = None
        if current is not None and current.get("status") != "cancelled":
            etag = current.get("etag")
            if guard is not None and (guard.google_updated is not None or guard.google_seen_fingerprint is not None):
                same_stamp = guard.google_updated is not None and current.get("updated") == guard.google_updated
                if not same_stamp and (
                    guard.google_seen_fingerprint is None or google_fp(current, None) != guard.google_seen_fingerprint
                ):
                    raise Skip("changed in Google since the plan")
        body = onto_current(current, planned)

        def update(s: Any) -> Any:
            # conferenceDataVersion / supportsAttachments: Google takes the call and the files as carried
            req = s.events().update(
                calendarId=writer.calendar_id,
                eventId=gid,
                body=body,
                sendUpdates=SEND_UPDATES,
                conferenceDataVersion=1,
                supportsAttachments=True,
            )
            if etag:
                req.headers["If-Match"] = etag
            return req

        try:
            result: dict[str, Any] = writer.session.execute(update, "events.update")
            return result
        except HttpError as exc:
            status = error_info(exc).status
            if status == 412:
                raise Skip("changed in Google since the plan (If-Match failed)") from None
            if status not in (404, 410):
                raise
        inserted = writer.insert(gid, dict(planned), undelete=True)
        return inserted.event or {}

    # -- deletions ---------------------------------------------------------------------------------
    def delete(self, a: DeleteGoogle) -> Applied:
        """Confirmed gone from Advoware first (or owned by someone else now): never on a listing alone."""
        termin = self.ctx.advoware.get_termin(a.frnr)
        if termin is not None and owner_code(termin).upper() == self.book.employee.upper():
            raise Skip("still in Advoware (outside the window?)")
        r = self.writer.apply(WriteOp.delete(a.google_event_id))
        if r.outcome not in ("deleted", "already_deleted"):
            raise RuntimeError(f"delete {r.outcome}: {r.error or ''}")
        self.book.mark_deleted(a)
        return Applied(r.outcome)
