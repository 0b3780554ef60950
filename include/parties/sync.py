"""One party, EspoCRM → Advoware: `PartySync.sync_party(espo_id) -> Outcome`.

Steps: fetch the CURRENT record from EspoCRM (404 → it was deleted) → map → create or update the
Advoware Beteiligter (update with `rowId`; a 409 re-reads and retries once) and its communications →
write betNr, sync status and time back to EspoCRM (with X-Version-Number) → record the link in the hub.

Nothing done twice: Advoware is read before it is written and only the difference is sent, so a
retried or re-delivered id writes nothing that is already there; a create is guarded by an intent row
(a worker killed between POST and recording the betNr adopts the record instead of creating another).
Echo guard: the write-back changes the EspoCRM record, which (without `skipOwn`) sends a webhook; when
the mapped fingerprint equals the hub's and the link is complete, the sync does nothing at all, so
the integration's own change ends there.
Deletes: by default the Advoware record is kept (law firms keep parties for conflict checks) and the
hub link is set 'unlinked'; SYNC_PARTY_HARD_DELETE=true deletes it in Advoware.
Write protection: nothing is sent to Advoware; the outcome says so, the id is acknowledged (not
retried into the dead letters) and the hub remembers it, so `write_protected_ids` can queue it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from include.advoware.client import AdvowareClient
from include.advoware.errors import AdvowareAuthError, AdvowareConflict, AdvowareNotFound, WriteProtectedError
from include.espocrm.client import EspoCrmClient
from include.espocrm.errors import ConflictError, NotFoundError
from include.hub.db import Hub
from include.hub.parties import PartyLink, PartyStore
from include.parties import mapping
from include.parties.mapping import Komm, MappedParty

log = logging.getLogger("include.parties")

Action = Literal["created", "updated", "unchanged", "unlinked", "hard_deleted", "gone", "write_protected"]


@dataclass
class Outcome:
    espo_id: str
    action: Action
    bet_nr: int | None = None
    advoware_writes: int = 0
    notes: list[str] = field(default_factory=list)  # ids and reasons only, never party data

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _WriteBackConflict(Exception):
    """The EspoCRM record changed between our read and the write-back: sync it again."""

    outcome: Outcome | None = None  # what was done before the conflict


def _espo_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class PartySync:
    def __init__(
        self,
        espo: EspoCrmClient,
        advoware: AdvowareClient,
        store: PartyStore,
        *,
        entity: str | None = None,
        hard_delete: bool = False,
        clock: Callable[[], str] = _espo_now,
    ) -> None:
        self.espo = espo
        self.advoware = advoware
        self.store = store
        self.entity = entity or espo.entity
        self.hard_delete = hard_delete
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Any, *, hub_dsn: str | None = None) -> PartySync:
        """From include.settings.Settings (.env): the worker CLI and the demo build it this way."""
        espo = EspoCrmClient.from_settings(settings.espocrm)
        advoware = AdvowareClient(settings.advoware, redis_url=settings.redis_url)
        store = PartyStore(Hub(hub_dsn or settings.postgres.dsn()))
        return cls(espo, advoware, store, entity=settings.espocrm.entity, hard_delete=settings.sync.party_hard_delete)

    def close(self) -> None:
        self.espo.close()
        self.advoware.close()
        self.store.close()

    @property
    def write_protected(self) -> bool:
        return bool(self.advoware.settings.write_protection)

    # -- entry point ---------------------------------------------------------------------------
    def sync_party(self, espo_id: str) -> Outcome:
        """Bring Advoware to the current EspoCRM state of one party. Raises on failure (the caller
        nacks: backoff, then dead letter)."""
        try:
            outcome = self._sync_once(espo_id)
        except _WriteBackConflict as first:
            log.info("party %s changed during its sync: syncing it again", espo_id)
            try:
                outcome = self._sync_once(espo_id)
            except _WriteBackConflict:
                raise ConflictError("PUT", f"/{self.entity}/{espo_id}", 409, "changed twice during the sync") from None
            done = first.outcome
            if done is not None:  # what the first pass wrote still counts
                if outcome.action == "unchanged":
                    outcome.action = done.action
                outcome.advoware_writes += done.advoware_writes
                outcome.notes[:0] = done.notes
        log.info(
            "party %s: %s (betNr %s, %d Advoware writes)%s",
            espo_id,
            outcome.action,
            outcome.bet_nr,
            outcome.advoware_writes,
            f"; {'; '.join(outcome.notes)}" if outcome.notes else "",
        )
        return outcome

    def _sync_once(self, espo_id: str) -> Outcome:
        link = self.store.get(espo_id)
        try:
            record = self.espo.get(self.entity, espo_id)
        except NotFoundError:
            return self._deleted(espo_id, link)
        mapped = mapping.map_party(record)
        if (
            link is not None
            and link.status == "linked"
            and link.bet_nr is not None
            and link.fingerprint == mapped.fingerprint
        ):
            return Outcome(espo_id, "unchanged", link.bet_nr)  # our own echo, or a re-delivery
        if self.write_protected:
            return self._write_protected(espo_id, record, link)
        try:
            outcome = self._upsert(espo_id, record, mapped, link)
        except WriteProtectedError:  # switched on while we ran: the client refused before sending
            return self._write_protected(espo_id, record, self.store.get(espo_id))
        try:
            version = self._write_back(
                espo_id,
                record,
                {
                    mapping.FIELD_BET_NR: outcome.bet_nr,
                    mapping.FIELD_SYNC_STATUS: "synced",
                    mapping.FIELD_LAST_SYNC: self.clock(),
                },
            )
        except _WriteBackConflict as exc:
            exc.outcome = outcome
            raise
        self.store.mark_linked(espo_id, version)
        return outcome

    # -- Advoware ------------------------------------------------------------------------------
    def _upsert(self, espo_id: str, record: Mapping[str, Any], mapped: MappedParty, link: PartyLink | None) -> Outcome:
        outcome = Outcome(espo_id, "updated")
        current: dict[str, Any] | None = None
        if link is not None and link.bet_nr is not None:
            try:
                current = self.advoware.get_beteiligter(link.bet_nr)
            except AdvowareNotFound:  # removed in Advoware by someone: create it again
                outcome.notes.append(f"betNr {link.bet_nr} no longer in Advoware: created again")
        elif link is not None and link.create_pending:
            current = self._adopt(link, mapped.body["name"])
            if current is not None:
                outcome.notes.append(f"adopted betNr {current['betNr']} of an interrupted create")
        if current is None:
            self.store.mark_create_pending(espo_id, mapping.body_fingerprint(mapped.body))
            current = self.advoware.create_beteiligter(mapped.body)
            self._audit("POST", "Beteiligte", f"betNr {current['betNr']}")
            outcome.action = "created"
            outcome.advoware_writes += 1
        bet_nr = int(current["betNr"])
        outcome.bet_nr = bet_nr
        # record the betNr at once: whatever fails later, a retry finds this record again
        self._record_advoware(espo_id, bet_nr, current, mapped, record)
        current = self._update_fields(bet_nr, mapped, current, outcome)
        self._reconcile_komms(bet_nr, mapped.komms, current.get("kommunikation") or [], outcome)
        self._record_advoware(espo_id, bet_nr, current, mapped, record)
        if outcome.action == "updated" and outcome.advoware_writes == 0:
            outcome.action = "unchanged"  # Advoware held it already (a retry after a crash, or a re-link)
        return outcome

    def _record_advoware(
        self, espo_id: str, bet_nr: int, current: Mapping[str, Any], mapped: MappedParty, record: Mapping[str, Any]
    ) -> None:
        """The hub's link to the Advoware record as it stands now (`current`, as Advoware answered)."""
        self.store.record_advoware(
            espo_id,
            bet_nr=bet_nr,
            row_id=current.get("rowId"),
            changed_at=current.get("geaendertAm"),
            fingerprint=mapped.fingerprint,
            espo_version=record.get("versionNumber"),
        )

    def _update_fields(
        self, bet_nr: int, mapped: MappedParty, current: dict[str, Any], outcome: Outcome
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            have, _ = mapping.advoware_content(current)
            if not mapping.changed_fields(mapped.body, have):
                return current
            try:
                updated = self.advoware.update_beteiligter(bet_nr, {**mapped.body, "rowId": current.get("rowId")})
            except AdvowareConflict:
                if attempt == 2:
                    raise
                # someone changed the record meanwhile: re-read (fresh rowId) and compare again
                current = self.advoware.get_beteiligter(bet_nr)
                continue
            self._audit("PUT", f"Beteiligte/{bet_nr}")
            outcome.advoware_writes += 1
            # the PUT answer may leave out the communications: keep the ones we read
            return {**current, **(updated or {}), "kommunikation": current.get("kommunikation") or []}
        return current  # pragma: no cover

    def _reconcile_komms(
        self, bet_nr: int, want: tuple[Komm, ...], have: list[Mapping[str, Any]], outcome: Outcome
    ) -> None:
        """Add what is missing, reuse a managed entry of the same kind for a changed value (kommKz is
        read-only on PUT), try to delete the rest (Advoware answers 403: the entry is left, reported).
        Entries staff created in Advoware (no sync mark) are never touched."""
        spare = list(mapping.managed_komms(have))
        missing: list[Komm] = []
        for komm in want:
            match = next((h for h in spare if int(h["kommKz"]) == komm.kind and h.get("tlf") == komm.value), None)
            if match is not None:
                spare.remove(match)
            else:
                missing.append(komm)
        for komm in missing:
            reuse = next((h for h in spare if int(h["kommKz"]) == komm.kind), None)
            if reuse is not None:
                spare.remove(reuse)
                self.advoware.update_kommunikation(
                    bet_nr, int(reuse["id"]), {"tlf": komm.value, "bemerkung": mapping.SYNC_MARK}
                )
                self._audit("PUT", f"Beteiligte/{bet_nr}/Kommunikationen/{reuse['id']}")
            else:
                created = self.advoware.create_kommunikation(bet_nr, mapping.komm_body(komm))
                self._audit("POST", f"Beteiligte/{bet_nr}/Kommunikationen", f"id {created.get('id')}")
            outcome.advoware_writes += 1
        for left in spare:
            try:
                self.advoware.delete_kommunikation(bet_nr, int(left["id"]))
            except AdvowareAuthError as exc:
                if exc.status != 403:
                    raise
                self._audit("DELETE", f"Beteiligte/{bet_nr}/Kommunikationen/{left['id']}", "refused (403)", status=403)
                outcome.notes.append(
                    f"Kommunikation {left['id']} of betNr {bet_nr} left: Advoware refuses to delete it (403)"
                )
                continue
            self._audit("DELETE", f"Beteiligte/{bet_nr}/Kommunikationen/{left['id']}")
            outcome.advoware_writes += 1

    def _adopt(self, link: PartyLink, name: str | None) -> dict[str, Any] | None:
        """After an interrupted create: the unlinked Advoware record holding exactly the body that create
        sent (its fingerprint is the intent's), whatever changed in EspoCRM since. Looked up by the
        party's current name first; a renamed or deleted party costs one full list (crash recovery only)."""
        linked = self.store.linked_bet_nrs()

        def sent(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                r
                for r in records
                if int(r["betNr"]) not in linked
                and mapping.body_fingerprint(mapping.advoware_content(r)[0]) == link.fingerprint
            ]

        candidates = sent(self.advoware.list_beteiligte({"name": name})) if name else []
        if not candidates:
            candidates = sent(self.advoware.list_beteiligte())
        if not candidates:
            return None
        best = max(candidates, key=lambda r: int(r["betNr"]))  # the newest: ours was created last
        return self.advoware.get_beteiligter(int(best["betNr"]))

    def _audit(self, method: str, target: str, detail: str | None = None, *, status: int | None = 200) -> None:
        self.store.audit(method, target, status, detail)

    # -- deletes and write protection ----------------------------------------------------------
    def _deleted(self, espo_id: str, link: PartyLink | None) -> Outcome:
        if link is not None and link.create_pending:
            # deleted before an interrupted create was recorded: find what Advoware got, treat it as linked
            adopted = self._adopt(link, None)
            if adopted is not None:
                self.store.record_advoware(
                    espo_id,
                    bet_nr=int(adopted["betNr"]),
                    row_id=adopted.get("rowId"),
                    changed_at=adopted.get("geaendertAm"),
                    fingerprint=link.fingerprint,
                    espo_version=None,
                )
                link = self.store.get(espo_id)
        if link is None or link.bet_nr is None:
            if link is not None:
                self.store.forget(espo_id)
            return Outcome(espo_id, "gone")  # never reached Advoware
        if link.status in ("unlinked", "deleted"):
            return Outcome(espo_id, "unchanged", link.bet_nr, notes=[f"already {link.status}"])
        if not self.hard_delete:
            self.store.mark_removed(espo_id, hard_deleted=False)
            return Outcome(
                espo_id, "unlinked", link.bet_nr, notes=[f"deleted in EspoCRM; betNr {link.bet_nr} kept in Advoware"]
            )
        if self.write_protected:
            self.store.mark_write_protected(espo_id)
            return Outcome(
                espo_id,
                "write_protected",
                link.bet_nr,
                notes=[f"hard delete of betNr {link.bet_nr} not sent: write protection"],
            )
        writes = 1
        try:
            self.advoware.delete_beteiligter(link.bet_nr)
            self._audit("DELETE", f"Beteiligte/{link.bet_nr}")
        except AdvowareNotFound:
            writes = 0  # gone already (an earlier attempt, or someone in Advoware)
        self.store.mark_removed(espo_id, hard_deleted=True)
        return Outcome(espo_id, "hard_deleted", link.bet_nr, advoware_writes=writes)

    def _write_protected(self, espo_id: str, record: Mapping[str, Any], link: PartyLink | None) -> Outcome:
        self.store.mark_write_protected(espo_id)
        self._audit("PUT" if link and link.bet_nr else "POST", "Beteiligte", "write_protected", status=None)
        if record.get(mapping.FIELD_SYNC_STATUS) != "write_protected":
            try:  # show it in the CRM; the status does not change again, so no webhook loop
                self._write_back(espo_id, record, {mapping.FIELD_SYNC_STATUS: "write_protected"})
            except _WriteBackConflict:
                pass  # a newer change is on its way: it gets the same treatment
        return Outcome(
            espo_id,
            "write_protected",
            link.bet_nr if link else None,
            notes=["Advoware write protection is on: nothing sent"],
        )

    # -- EspoCRM -------------------------------------------------------------------------------
    def _write_back(self, espo_id: str, record: Mapping[str, Any], data: dict[str, Any]) -> int | None:
        """Partial PUT of our own fields, guarded by the version we read; answers the new version."""
        try:
            updated = self.espo.update(self.entity, espo_id, data, version_number=record.get("versionNumber"))
        except ConflictError:
            raise _WriteBackConflict() from None
        except NotFoundError:
            return None  # deleted meanwhile: its delete webhook follows
        return updated.get("versionNumber") if isinstance(updated, Mapping) else None
