"""Who is synced: the active Advoware employees (Mitarbeiter with `aktiv`).

Each run lists the Mitarbeiter and records every employee in the hub (`employee_calendars`: e-mail,
active flag). A new active employee gets a Google calendar on their first run (prepare provisions
it). An employee who leaves (aktiv false, or gone from the list) stops being synced: the row is
marked inactive and nothing is written any more; their Google calendar and its events stay as they
are (nothing is deleted, so a returning employee continues where they left off).
An empty Mitarbeiter list is read as a glitch, never as "everyone left".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from include.advoware.client import AdvowareClient
from include.hub import calendars as hub_calendars
from include.hub.db import Hub

log = logging.getLogger(__name__)


def _active(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "ja", "yes")
    return value is None or bool(value)  # a record without the flag counts as active


def _employee(record: dict[str, Any]) -> str:
    return str(record.get("kuerzel") or "").strip()


def record_employees(hub: Hub, mitarbeiter: list[dict[str, Any]]) -> list[str]:
    """Write e-mail and active flag of every listed employee; returns the active employees (sorted)."""
    listed = {_employee(m): m for m in mitarbeiter if _employee(m)}
    active = sorted(employee for employee, m in listed.items() if _active(m.get("aktiv")))
    with hub.transaction() as conn:
        hub_calendars.record_employees(conn, {e: (m.get("email") or None) for e, m in listed.items()}, set(active))
    return active


def active_employees(advoware: AdvowareClient, hub: Hub, only: Iterable[str] | None = None) -> list[str]:
    """The employees to sync this run (optionally a subset, case-insensitive)."""
    mitarbeiter = advoware.list_mitarbeiter()
    if not mitarbeiter:
        raise RuntimeError("Advoware returned no Mitarbeiter: treated as a glitch, nobody is deactivated")
    active = record_employees(hub, mitarbeiter)
    wanted = {c.strip().upper() for c in (only or []) if c and c.strip()}
    if wanted:
        unknown = wanted - {c.upper() for c in active}
        if unknown:
            log.warning("requested employees not active in Advoware: %s", ", ".join(sorted(unknown)))
        active = [c for c in active if c.upper() in wanted]
    log.info("%d active employees to sync: %s", len(active), ", ".join(active))
    return active
