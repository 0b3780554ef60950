"""Targeted runs of one employee and the per-employee lease, against the Advoware and Google sandboxes
and the real hub: a targeted run syncs its employee alone; its echo writes nothing; it never works on
an employee while another run does (the scheduled run skips the employee, the targeted run waits); a
worker killed while holding an employee's lease blocks them only until the lease expires.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from include.calendar_sync.context import SyncContext
from include.calendar_sync.lease import EmployeeLeased, employee_lease, try_acquire
from include.calendar_sync.planning import plan_employees
from include.calendar_sync.prepare import RunParams
from include.calendar_sync.runner import sync_all
from include.calendar_sync.targeted import sync_targeted
from include.hub import leases
from include.hub.db import connect
from include.settings import PushSettings
from tests.calendar_helpers import (
    calendar_events,
    calendar_ids,
    make_ctx,
    seed_firm,
    total_writes,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> SyncContext:
    context = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path, lease_ttl_s=5)
    context.settings.push = PushSettings(_env_file=None, lease_wait_s=10)
    yield context  # type: ignore[misc]
    context.close()


@pytest.fixture
def synced(ctx: SyncContext, advoware_url: str) -> list[str]:
    """The seeded firm after a first full run; returns the employees."""
    seed_firm(advoware_url)
    _, results = sync_all(ctx)
    assert {r["status"] for r in results.values()} == {"success"}
    return sorted(results)


def new_termin(ctx: SyncContext, employee: str, text: str = "Besprechung") -> int:
    day = (date.today() + timedelta(days=3)).isoformat()
    made = ctx.advoware.create_termin(
        {
            "text": text,
            "notiz": "",
            "ort": "",
            "kuerzel": employee,
            "anwalt": employee,
            "privat": 0,
            "abwesenheit": 0,
            "datum": f"{day}T10:00:00",
            "uhrzeitVon": "10:00:00",
            "datumBis": f"{day}T11:00:00",
            "uhrzeitBis": "11:00:00",
        }
    )
    return int(made["frNr"])


def in_google(google_url: str, hub: str, employee: str, text: str) -> bool:
    return any(e.get("summary") == text for e in calendar_events(google_url, calendar_ids(hub)[employee]))


def test_a_targeted_run_syncs_its_employee_alone_and_its_echo_writes_nothing(
    ctx: SyncContext, synced: list[str], advoware_url: str, google_url: str, hub: str
) -> None:
    ab, other = synced[0], synced[1]
    new_termin(ctx, ab, "Mandantentermin")
    new_termin(ctx, other, "Nicht jetzt")
    result = sync_targeted(ctx, "push__t1", ab.lower())  # the Kürzel in any case
    assert result["status"] == "success"
    assert in_google(google_url, hub, ab, "Mandantentermin")
    assert not in_google(google_url, hub, other, "Nicht jetzt")  # the other employee waits for their run
    with connect(hub) as conn:
        rows = conn.execute("SELECT employee FROM sync_runs WHERE run_id = 'push__t1'").fetchall()
        assert [r["employee"] for r in rows] == [ab]
        assert leases.holder(conn, ab) is None  # given back
    # Google notifies the run's own write: the run it starts finds nothing to do
    writes = (total_writes(advoware_url), total_writes(google_url))
    echo = sync_targeted(ctx, "push__t2", ab)
    assert echo["status"] == "success" and (total_writes(advoware_url), total_writes(google_url)) == writes


def test_an_unknown_or_departed_employee_is_left_to_the_schedule(
    ctx: SyncContext, synced: list[str], google_url: str
) -> None:
    writes = total_writes(google_url)
    assert sync_targeted(ctx, "push__t3", "NOBODY")["status"] == "skipped"
    assert total_writes(google_url) == writes


def test_the_scheduled_run_skips_an_employee_a_targeted_run_holds(
    ctx: SyncContext, synced: list[str], advoware_url: str, hub: str
) -> None:
    ab, cd = synced[0], synced[1]
    new_termin(ctx, ab)
    new_termin(ctx, cd)
    with connect(hub) as conn:
        assert leases.acquire(conn, ab, "push__AB/targeted", 60)
    units = plan_employees(ctx, "scheduled__1", RunParams())
    planned = {w["employee"] for u in units for w in u["employees"]}
    assert planned == {cd}  # AB is being synced right now by the targeted run
    with connect(hub) as conn:
        rows = {r["employee"] for r in conn.execute("SELECT employee FROM sync_runs WHERE run_id = 'scheduled__1'")}
        assert ab not in rows
        assert leases.holder(conn, ab)[0] == "push__AB/targeted"  # type: ignore[index]  # untouched
        assert leases.holder(conn, cd) is None  # the planning gave it back; its phases take it again


def test_a_targeted_run_waits_for_the_scheduled_runs_phase_then_syncs(
    ctx: SyncContext, synced: list[str], google_url: str, hub: str
) -> None:
    """The collision: the scheduled run's phase holds the employee; the targeted run starts meanwhile.
    It writes nothing while the phase works, then syncs once the phase gave the lease back."""
    ab = synced[0]
    new_termin(ctx, ab, "Nach der Phase")
    phase = try_acquire(hub, ab, "scheduled__2/phase1", ttl_s=5)
    assert phase is not None
    outcome: dict[str, object] = {}

    def targeted() -> None:
        outcome["result"] = sync_targeted(ctx, "push__t4", ab, wait_s=20)
        outcome["at"] = time.monotonic()

    thread = threading.Thread(target=targeted)
    thread.start()
    deadline = time.monotonic() + 3.0  # while the phase holds it, the targeted run writes nothing
    while time.monotonic() < deadline:
        assert not in_google(google_url, hub, ab, "Nach der Phase")
        assert "result" not in outcome
        time.sleep(0.2)
    released = time.monotonic()
    phase.release()
    thread.join(timeout=60)
    assert outcome["result"]["status"] == "success"  # type: ignore[index]
    assert outcome["at"] >= released  # type: ignore[operator]
    assert in_google(google_url, hub, ab, "Nach der Phase")


def test_a_targeted_run_that_cannot_get_the_employee_fails_and_writes_nothing(
    ctx: SyncContext, synced: list[str], advoware_url: str, google_url: str, hub: str
) -> None:
    ab = synced[0]
    new_termin(ctx, ab)
    writes = (total_writes(advoware_url), total_writes(google_url))
    with employee_lease(hub, ab, "scheduled__3/phase4", ttl_s=5):
        with pytest.raises(EmployeeLeased, match="scheduled__3/phase4"):
            sync_targeted(ctx, "push__t5", ab, wait_s=0.5)
    assert (total_writes(advoware_url), total_writes(google_url)) == writes


def test_a_lease_is_renewed_while_its_holder_works(hub: str) -> None:
    with employee_lease(hub, "AB", "run-1/phase2", ttl_s=1.5):
        end = time.monotonic() + 3.5  # more than twice the TTL: only the renewals keep it
        while time.monotonic() < end:
            with connect(hub) as conn:
                assert not leases.acquire(conn, "AB", "run-2/targeted", 60)
            time.sleep(0.25)
    with connect(hub) as conn:
        assert leases.holder(conn, "AB") is None


_HOLD_AND_WAIT = textwrap.dedent("""
    import sys, time
    from include.calendar_sync.lease import try_acquire
    held = try_acquire(sys.argv[1], "AB", "killed-run/phase1", ttl_s=float(sys.argv[2]))
    print("held" if held else "not", flush=True)
    time.sleep(600)
""")


def test_a_worker_killed_while_holding_an_employee_blocks_them_only_until_the_lease_expires(
    ctx: SyncContext, synced: list[str], google_url: str, hub: str
) -> None:
    ab = synced[0]
    new_termin(ctx, ab, "Nach dem Absturz")
    ttl = 3.0
    worker = subprocess.Popen(
        [sys.executable, "-c", _HOLD_AND_WAIT.replace('"AB"', repr(ab)), hub, str(ttl)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "held"
        worker.kill()  # SIGKILL: no release, no more renewals
        worker.wait(timeout=10)
        killed = time.monotonic()
        with connect(hub) as conn:
            assert leases.holder(conn, ab)[0] == "killed-run/phase1"  # type: ignore[index]
        result = sync_targeted(ctx, "push__t6", ab, wait_s=ttl * 4)
        assert result["status"] == "success"
        assert in_google(google_url, hub, ab, "Nach dem Absturz")
        assert time.monotonic() - killed < ttl * 4
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
