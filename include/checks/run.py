"""All checks in turn, in the order a first day needs them; one result for the CLI, status view and gateway."""

from __future__ import annotations

import logging
from typing import Any

from include.checks import advoware, airflow, espocrm, google, hub, redis_store, smtp
from include.checks.verdict import Verdict, fail
from include.settings import Settings

log = logging.getLogger(__name__)
SERVICES = ("advoware", "google", "espocrm", "hub", "redis", "airflow", "smtp")


def run_all(settings: Settings, *, only: list[str] | None = None, employees: list[str] | None = None) -> list[Verdict]:
    """Every check (or those of `only`); `employees`: Kürzel whose delegation is checked (default all active)."""
    wanted = set(only or SERVICES)
    out: list[Verdict] = []
    active: list[dict[str, Any]] = []
    listed = False
    if "advoware" in wanted or "google" in wanted:
        found = _guarded("advoware", lambda: advoware.check(settings, active))
        listed = bool(active) or any(v.checked.startswith("read Mitarbeiter") and v.ok for v in found)
        if "advoware" in wanted:
            out += found
    steps = [
        ("google", lambda: google.check(settings, active if listed else None, employees)),
        ("espocrm", lambda: espocrm.check(settings)),
        ("hub", lambda: hub.check(settings)),
        ("redis", lambda: redis_store.check(settings)),
        ("airflow", lambda: airflow.check(settings)),
        ("smtp", lambda: smtp.check(settings)),
    ]
    for name, step in steps:
        if name in wanted:
            out += _guarded(name, step)
    return out


def _guarded(service: str, step: Any) -> list[Verdict]:
    """A check that breaks is a fail of its own service, never the end of the others."""
    try:
        return list(step())
    except Exception as exc:  # the class only: a message may carry a host's answer
        log.warning("check of %s raised %s", service, type(exc).__name__, exc_info=True)
        return [fail(service, f"check raised {type(exc).__name__}", "see the log of this process")]


def passed(verdicts: list[Verdict], *, strict: bool = False) -> bool:
    return all(v.status == "ok" if strict else v.ok for v in verdicts)
