"""The hub table `party_links`: EspoCRM party id ↔ Advoware betNr, the synced fingerprint and status.

status: 'linked' (Advoware and the write-back are done for `fingerprint`), 'failed' (something is
still to do: `last_error` says what), 'unlinked' (deleted in EspoCRM, the Advoware record kept),
'deleted' (deleted in EspoCRM and, by setting, in Advoware).
A row with bet_nr NULL and last_error CREATE_PENDING is a create intent: written before the Advoware
POST, so a worker killed between the POST and recording the betNr is recognised on the next try.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from include.hub import audit
from include.hub.db import Hub

CREATE_PENDING = "create pending"
WRITE_BACK_PENDING = "write-back to EspoCRM pending"
WRITE_PROTECTED = "write protected"

_COLUMNS = (
    "espo_id, bet_nr, advoware_row_id, advoware_changed_at, espo_version, fingerprint, status, "
    "attempts, last_error, last_synced_at"
)


@dataclass(frozen=True)
class PartyLink:
    espo_id: str
    bet_nr: int | None
    advoware_row_id: str | None
    advoware_changed_at: str | None
    espo_version: int | None
    fingerprint: str | None
    status: str
    attempts: int
    last_error: str | None
    last_synced_at: datetime | None

    @property
    def create_pending(self) -> bool:
        return self.bet_nr is None and self.last_error == CREATE_PENDING


class PartyStore:
    """The party links on a hub unit of work (`Hub`); every statement idempotent, so a connection the
    hub dropped is replaced and the statement repeated once (Hub.execute). Thread-safe."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()

    def close(self) -> None:
        self.hub.close()

    def _execute(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with self._lock:
            return self.hub.execute(sql, params)

    # -- reads ---------------------------------------------------------------------------------
    def get(self, espo_id: str) -> PartyLink | None:
        rows = self._execute(f"SELECT {_COLUMNS} FROM party_links WHERE espo_id = %s", (espo_id,))
        return PartyLink(**rows[0]) if rows else None

    def linked_bet_nrs(self) -> set[int]:
        return {r["bet_nr"] for r in self._execute("SELECT bet_nr FROM party_links WHERE bet_nr IS NOT NULL")}

    def write_protected_ids(self) -> list[str]:
        rows = self._execute(
            "SELECT espo_id FROM party_links WHERE status = 'failed' AND last_error = %s", (WRITE_PROTECTED,)
        )
        return [r["espo_id"] for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._execute("SELECT status, count(*) AS n FROM party_links GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    # -- writes --------------------------------------------------------------------------------
    def _upsert(self, espo_id: str, **values: Any) -> None:
        cols = ["espo_id", *values]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in values)
        self._execute(
            f"INSERT INTO party_links ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
            f"ON CONFLICT (espo_id) DO UPDATE SET {sets}, updated_at = now()",
            (espo_id, *values.values()),
        )

    def mark_create_pending(self, espo_id: str, fingerprint: str) -> None:
        self._upsert(espo_id, bet_nr=None, fingerprint=fingerprint, status="failed", last_error=CREATE_PENDING)

    def record_advoware(
        self,
        espo_id: str,
        *,
        bet_nr: int,
        row_id: str | None,
        changed_at: str | None,
        fingerprint: str | None,
        espo_version: int | None,
    ) -> None:
        """Advoware holds `fingerprint` now; the write-back to EspoCRM is still to do."""
        self._upsert(
            espo_id,
            bet_nr=bet_nr,
            advoware_row_id=row_id,
            advoware_changed_at=changed_at,
            fingerprint=fingerprint,
            espo_version=espo_version,
            status="failed",
            last_error=WRITE_BACK_PENDING,
        )

    def mark_linked(self, espo_id: str, espo_version: int | None) -> None:
        self._execute(
            "UPDATE party_links SET status = 'linked', last_error = NULL, attempts = 0, "
            "espo_version = %s, last_synced_at = now(), updated_at = now() WHERE espo_id = %s",
            (espo_version, espo_id),
        )

    def mark_write_protected(self, espo_id: str) -> None:
        """Nothing reached Advoware: keep the row (and its betNr) but forget the fingerprint, so the next
        sync after write protection is lifted writes the current state."""
        rows = self._execute(
            "UPDATE party_links SET status = 'failed', last_error = %s, fingerprint = NULL, "
            "updated_at = now() WHERE espo_id = %s RETURNING espo_id",
            (WRITE_PROTECTED, espo_id),
        )
        if not rows:
            self._upsert(espo_id, status="failed", last_error=WRITE_PROTECTED)

    def mark_removed(self, espo_id: str, *, hard_deleted: bool) -> None:
        self._execute(
            "UPDATE party_links SET status = %s, last_error = NULL, last_synced_at = now(), "
            "updated_at = now() WHERE espo_id = %s",
            ("deleted" if hard_deleted else "unlinked", espo_id),
        )

    def forget(self, espo_id: str) -> None:
        """Drop a create intent whose party vanished before it reached Advoware."""
        self._execute("DELETE FROM party_links WHERE espo_id = %s AND bet_nr IS NULL", (espo_id,))

    def audit(self, method: str, target: str, status: int | None, detail: str | None = None) -> None:
        """One write_audit row per write toward Advoware (never a body)."""
        entry = audit.AuditEntry(actor="beteiligte_sync", method=method, target=target, status=status, detail=detail)
        with self._lock, self.hub.transaction() as conn:
            audit.record(conn, entry)
