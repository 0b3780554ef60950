"""`make scale-demo`'s scenario on the Celery stack (`devstack up --executor celery`): a bigger
sandbox firm (seeded once, when the stack's sandbox starts), one calendar run and the party webhooks,
then every calendar run on that firm (a scheduled one too) with its outcome and counts, and which
worker ran which task instance.

Sandbox mode only (it reseeds the sandboxes and clears the hub). Output: ids, counts and worker names.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from devstack import demo as devstack_demo
from include.airflow_api import AirflowApi
from include.dag_ids import BETEILIGTE_SYNC_DAG, CALENDAR_SYNC_DAG
from include.settings import Settings

APPOINTMENTS = 20
EMPLOYEES = int(os.environ.get("DEVSTACK_SCALE_EMPLOYEES", "12"))  # the scale firm


SEEDED_FILE = "scale-firm.json"  # in the run dir: when the scale firm was seeded, and its size


class Stack(Protocol):
    """What the scale firm and its scenario use of devstack.stack.Stack (which calls seed_firm itself)."""

    settings: Settings
    run_dir: Path
    executor: str

    def say(self, msg: str) -> None: ...
    def sandbox_ports(self) -> dict[str, int]: ...
    def gateway_url(self) -> str: ...
    def airflow_url(self) -> str: ...


def seed_firm(stack: Stack, employees: int, *, reset: bool = True) -> str:
    """A generated firm of `employees` (all active) over the sandboxes' admin API, once per firm: `up`
    seeds it when the Celery stack's sandbox starts, the scenario only when another firm is there.
    Returns the time it was seeded (ISO, UTC); every calendar run from then on is on this firm."""
    urls = devstack_demo.sandbox_urls(stack.sandbox_ports())
    if reset:
        devstack_demo.reset_previous_demo(stack.settings, stack.say)
    seeded_at = datetime.now(UTC).isoformat()
    with httpx.Client(timeout=60) as http:
        for side in ("google", "advoware"):  # the demo firm's calendars and appointments go with the hub
            http.post(f"{urls[side]}/_sandbox/reset").raise_for_status()
        http.post(f"{urls['google']}/_sandbox/seed", json={"seed": 1, "employees": employees}).raise_for_status()
        http.post(
            f"{urls['advoware']}/_sandbox/seed",
            json={
                "seed": 1,
                "employees": employees,
                "appointments_per_employee": APPOINTMENTS,
                "start": date.today().isoformat(),
            },
        ).raise_for_status()
        staff = http.get(f"{urls['advoware']}/_sandbox/state").json()["mitarbeiter"]
        # the generated firm has one former employee; here everyone works
        http.post(
            f"{urls['advoware']}/_sandbox/seed", json={"mitarbeiter": [{**m, "aktiv": True} for m in staff]}
        ).raise_for_status()
        http.post(f"{urls['espocrm']}/_sandbox/seed", json=devstack_demo.SEEDS["espocrm"]).raise_for_status()
    (stack.run_dir / SEEDED_FILE).write_text(json.dumps({"seeded_at": seeded_at, "employees": employees}))
    stack.say(
        f"sandbox firm: {employees} employees x {APPOINTMENTS} appointments, "
        f"{devstack_demo.SEEDS['espocrm']['parties']} EspoCRM parties"
    )
    return seeded_at


def _seeded(stack: Stack, employees: int) -> str | None:
    """When the firm of this size now in the sandbox was seeded; None if another firm is there."""
    try:
        mark = json.loads((stack.run_dir / SEEDED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return str(mark["seeded_at"]) if mark.get("employees") == employees else None


def calendar_runs_since(api: AirflowApi, since: str) -> list[dict[str, Any]]:
    """Every calendar run queued since `since` (the schedule's as well as the demo's), oldest first."""
    runs, _ = api.list_runs(CALENDAR_SYNC_DAG, limit=100)
    after = datetime.fromisoformat(since)
    found = [r for r in runs if r.get("queued_at") and datetime.fromisoformat(r["queued_at"]) >= after]
    return sorted(found, key=lambda r: str(r["queued_at"]))


def run_report(stack: Stack, runs: list[dict[str, Any]]) -> str:
    """Each run's outcome and the per-employee counts it wrote (the hub's run log)."""
    from include.calendar_sync.report import table

    parts = []
    for run in runs:
        parts.append(f"calendar run {run['dag_run_id']} ({run.get('run_type', '?')}): {run['state']}")
        parts.append(table(stack.settings.postgres.dsn(), run["dag_run_id"]))
    return "\n".join(parts) if parts else "  (no calendar run)"


def _poll(
    done: Callable[[], bool],
    timeout_s: float,
    say: Any,
    progress: Callable[[float], str],
    late: Callable[[], str],
) -> None:
    """Look every 2 s until `done()`: a progress line (of the seconds waited) every 15 s, a TimeoutError
    naming what is `late` after timeout_s."""
    started = last = time.monotonic()
    while not done():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{late()} after {timeout_s:.0f}s")
        if time.monotonic() - last > 15:
            say(progress(time.monotonic() - started))
            last = time.monotonic()
        time.sleep(2)


def wait_for_run(api: AirflowApi, dag_id: str, run_id: str, timeout_s: float, say: Any) -> str:
    state = ""

    def ended() -> bool:
        nonlocal state
        state = str(api.get_run(dag_id, run_id)["state"])
        return state in ("success", "failed")

    _poll(
        ended,
        timeout_s,
        say,
        lambda s: f"  {dag_id}: {state}, {s:.0f}s",
        lambda: f"{dag_id} run {run_id} still {state}",
    )
    return state


def _wait_quiet(api: AirflowApi, dag_id: str, timeout_s: float, say: Any) -> None:
    """Until no run of `dag_id` is queued or running."""
    _poll(
        lambda: not sum(api.list_runs(dag_id, state=state, limit=1)[1] for state in ("queued", "running")),
        timeout_s,
        say,
        lambda s: f"  waiting for the {dag_id} run that started with the stack ({s:.0f}s)",
        lambda: f"{dag_id} still has active runs",
    )


def task_hosts(api: AirflowApi, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of a run that ran (try, state, and the worker that ran its last try)."""
    r = api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
    r.raise_for_status()
    return [t for t in r.json()["task_instances"] if t.get("hostname")]


def _label(ti: dict[str, Any]) -> str:
    name = ti["task_id"].split(".")[-1]
    index = ti.get("rendered_map_index") or (ti["map_index"] if ti["map_index"] >= 0 else None)
    return f"{name}[{index}]" if index is not None else name


def worker_table(tis: list[dict[str, Any]]) -> str:
    by_host: dict[str, list[str]] = defaultdict(list)
    for ti in tis:
        by_host[ti["hostname"]].append(_label(ti) + (f" (try {ti['try_number']})" if ti["try_number"] > 1 else ""))
    lines = []
    for host, labels in sorted(by_host.items()):
        lines.append(f"  {host}: {len(labels)} task instances")
        lines += [f"    {label}" for label in sorted(labels)]
    return "\n".join(lines)


def scale_scenario(stack: Stack, *, employees: int = EMPLOYEES, timeout_s: float = 900.0) -> int:
    if not stack.settings.sandbox_mode:
        stack.say("scale-scenario: only in sandbox mode (SANDBOX_MODE=true); it reseeds the sandboxes")
        return 1
    if stack.executor != "celery":
        stack.say("scale-scenario: the stack runs the LocalExecutor; start it with `make scale-demo`")
        return 1
    s = stack.settings
    api = AirflowApi(
        stack.airflow_url(), s.airflow_api.username, s.airflow_api.password.get_secret_value(), timeout_s=30
    )
    failed: list[str] = []
    try:
        # a scheduled run that started with the stack works on the firm `up` seeded: it finishes first
        # and is part of the tally below
        _wait_quiet(api, CALENDAR_SYNC_DAG, timeout_s, stack.say)
        seeded_at = _seeded(stack, employees)
        if seeded_at is None:
            seeded_at = seed_firm(stack, employees)
        else:
            stack.say(f"sandbox firm of {employees} employees seeded at start-up ({seeded_at[:19]} UTC)")
        run_id = f"scale__calendar__{int(time.time())}"
        api.trigger(CALENDAR_SYNC_DAG, {}, dag_run_id=run_id, note="make scale-demo")
        stack.say(f"\n== calendar run {run_id} ({employees} employees) on the Celery workers")
        if wait_for_run(api, CALENDAR_SYNC_DAG, run_id, timeout_s, stack.say) != "success":
            failed.append("calendar")
        runs = calendar_runs_since(api, seeded_at)
        stack.say(
            f"\n== the calendar runs on this firm ({len(runs)}), their outcome and counts\n" + run_report(stack, runs)
        )
        calendar_tis = [ti for run in runs for ti in task_hosts(api, CALENDAR_SYNC_DAG, run["dag_run_id"])]
        party_since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        urls = devstack_demo.sandbox_urls(stack.sandbox_ports())
        try:
            devstack_demo.run_party_part(s, urls, stack.gateway_url(), stack.say)
        except Exception as exc:  # the table below still shows what ran
            failed.append("parties")
            stack.say(f"parties FAILED: {type(exc).__name__}: {exc}")
        runs = (
            api.request(
                "GET", "/api/v2/dags/beteiligte_sync/dagRuns", params={"start_date_gte": party_since, "limit": 100}
            )
            .json()
            .get("dag_runs", [])
        )
        party_tis = [ti for run in runs for ti in task_hosts(api, BETEILIGTE_SYNC_DAG, run["dag_run_id"])]
        stack.say(
            f"\n== which worker ran which task instance\ncalendar ({len(runs)} runs):\n{worker_table(calendar_tis)}"
        )
        stack.say(f"beteiligte_sync ({len(runs)} runs):\n{worker_table(party_tis) or '  (no task process)'}")
        hosts = {ti["hostname"] for ti in calendar_tis + party_tis}
        stack.say(
            f"\n{len(calendar_tis) + len(party_tis)} task instances on {len(hosts)} workers: "
            f"{', '.join(sorted(hosts))}" + (f"; FAILED: {', '.join(failed)}" if failed else "")
        )
    finally:
        api.close()
    return 1 if failed else 0
