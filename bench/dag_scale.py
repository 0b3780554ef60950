"""Benchmark: what a calendar run costs on the real scheduler as the firm grows.

A stack of its own (bench/_stack.py: `airflow standalone` with LocalExecutor and parallelism 4,
SQLite metadata, the sandboxes, its own Redis server and hub database, on free ports). For each
firm size N (default 10, 50, 100 employees x 50 appointments; every employee active, Google in
delegated mode with Google's quotas of 600 requests per minute per user and 10,000 per minute per
project enforced by the sandbox, Advoware 30 ms and Google 40 ms latency per request):

1. the initial run of `advoware_calendar_sync` (everything is new: every employee has work), then
   `--noop-runs` runs that find nothing to do, then (unless `--no-bulk`) a run after a bulk change:
   one new Advoware appointment for every employee (every employee has work again), each triggered
   through the REST API and waited for by reading Airflow's metadata database directly (polling the
   API would charge the API server);
2. in the same stack, `calendar_sync_floor`: a DAG of the same shape whose tasks do nothing, expanded
   over as many units as the real initial and no-op runs expanded their group (Airflow's own floor).

Per run: wall time (queued -> end), task instances that ran (and their tries), the units the
employee group was expanded over, CPU seconds of the Airflow process tree (api-server, scheduler,
dag-processor, triggerer, executor workers and every task process they started) and of the sandbox
process, the machine's load average before and after and its busy CPU seconds (all processes, from
/proc/stat: the difference to ours is PostgreSQL, Redis and whatever else ran, e.g. other people's
work on a shared machine), and Google's quota as the sandbox saw it (requests refused per user and
per project, the most requests the project's minute ever held). Before the first firm: the idle
stack's CPU per second with no run at all. The calendar DAG's schedule is moved out of the way
(`CALENDAR_SYNC_SCHEDULE`), so only the bench starts runs. After the initial and the bulk run the
result is checked: every appointment exactly once in its employee's calendar, all linked.

    .venv/bin/python -m bench.dag_scale [--sizes 10,50,100] [--appointments 50] [--noop-runs 2] [--idle-s 120]
    .venv/bin/python -m bench.dag_scale --sizes 1000,2000 --appointments 8   # a firm of 1,000 and more
    .venv/bin/python -m bench.dag_scale --sizes 1000 --appointments 8 --max-units 4 --no-floor  # another unit cap

(The sandbox gives every employee at least 8 appointments: the special kinds, series among them.)

Last line: JSON keyed by N: noop_cpu_s_per_employee, noop_wall_s, initial_wall_s, initial_cpu_s,
bulk_wall_s, bulk_cpu_s, task instances and units per run, floor_cpu_s, quota, the goals of a firm
of 1,000 and more (`goals`: initial and bulk run under 15 min, no-op under 60 s and 0.05 CPU-s per employee, every run
a success), the load of the machine, and the arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg

from bench._stack import OwnStack, component_pids, tree_cpu
from include.airflow_api import AirflowApi
from include.settings import SyncSettings
from sandbox.firm import generate_firm

DAG = "advoware_calendar_sync"
FLOOR = "calendar_sync_floor"
SEED = 4711
DEFAULT_MAX_UNITS = int(SyncSettings.model_fields["max_units"].default)

FLOOR_DAG = '''"""The shape of advoware_calendar_sync, doing nothing: plan_employees returns `work` items (units)
and the group of four chained tasks is expanded over them (Airflow's own cost of the shape)."""
from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task, task_group


@dag(dag_id="calendar_sync_floor", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False,
     max_active_runs=1, params={"work": Param(0, type="integer")},
     default_args={"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": 2.0})
def calendar_sync_floor():
    @task(pool="advoware_api")
    def plan_employees():
        return [{"employee": f"E{i:03d}"} for i in range(int(get_current_context()["params"]["work"]))]

    @task_group(group_id="employee_sync")
    def employee_sync(work):
        @task(pool="google_calendar_api")
        def phase_1_new_advoware(work):
            return {}

        @task(pool="advoware_api", trigger_rule="all_done")
        def phase_2_new_google(work):
            return {}

        @task(pool="google_calendar_api", trigger_rule="all_done")
        def phase_3_deletions(work):
            return {}

        @task(pool="google_calendar_api", trigger_rule="all_done")
        def phase_4_updates(work):
            return {}

        phase_1_new_advoware(work) >> phase_2_new_google(work) >> phase_3_deletions(work) >> phase_4_updates(work)

    employee_sync.expand(work=plan_employees())


calendar_sync_floor()
'''


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, every process), from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]  # noqa: SIM115
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _ts(value: Any) -> float:
    """A timestamp column of Airflow's SQLite metadata as epoch seconds (stored in UTC)."""
    text = str(value).replace("T", " ")
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class Bench:
    def __init__(self, stack: OwnStack, args: argparse.Namespace) -> None:
        self.stack, self.args = stack, args
        self.api = AirflowApi(stack.url("airflow"), "admin", stack.env["AIRFLOW_API_PASSWORD"], timeout_s=60)
        self.http = httpx.Client(timeout=300)
        self.airflow_pid, self.sandbox_pid = stack.pid("airflow"), stack.pid("sandbox")
        self.runs = 0

    def close(self) -> None:
        self.api.close()
        self.http.close()

    # -- Airflow ------------------------------------------------------------------------------------
    def _patch(self, path: str, timeout_s: float = 120, **kw: Any) -> None:
        """PATCH until Airflow takes it: its SQLite answers 500 while the scheduler holds the write lock."""
        deadline = time.monotonic() + timeout_s
        while (r := self.api.request("PATCH", path, **kw)).status_code >= 500 and time.monotonic() < deadline:
            time.sleep(1)
        r.raise_for_status()

    def pause(self, dag_id: str) -> None:
        """Pause `dag_id` and end its unfinished runs (a paused DAG's run would never finish)."""
        self._patch(f"/api/v2/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": True})
        for (run_id,) in self.stack.metadata(
            "SELECT run_id FROM dag_run WHERE dag_id = ? AND state IN ('queued', 'running')", (dag_id,)
        ):
            self._patch(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})

    def wait_quiet(self, timeout_s: float = 900) -> None:
        """No run of any DAG queued or running (the stack's own first runs end first)."""
        deadline = time.monotonic() + timeout_s
        while self.stack.metadata("SELECT count(*) FROM dag_run WHERE state IN ('queued', 'running')")[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError("the stack did not become quiet")
            time.sleep(2)

    def measure(self, dag_id: str, conf: dict[str, Any], label: str) -> dict[str, Any]:
        self.runs += 1
        run_id = f"bench__{label}__{self.runs}"
        time.sleep(self.args.settle_s)  # the previous run's trailing scheduler work is not charged here
        load_before = os.getloadavg()[0]
        busy = machine_busy_s()
        cpu_airflow, cpu_sandbox = tree_cpu(self.airflow_pid), tree_cpu(self.sandbox_pid)
        requests_before = self.api_requests()
        self.api.trigger(dag_id, conf, dag_run_id=run_id)
        deadline = time.monotonic() + self.args.run_timeout_s
        while True:
            rows = self.stack.metadata(
                "SELECT state, queued_at, end_date FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
            )
            if rows and rows[0][0] in ("success", "failed"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} not finished in {self.args.run_timeout_s:.0f}s")
            time.sleep(0.5)
        cpu_airflow = tree_cpu(self.airflow_pid) - cpu_airflow
        cpu_sandbox = tree_cpu(self.sandbox_pid) - cpu_sandbox
        busy = machine_busy_s() - busy
        requests = {side: n - requests_before[side] for side, n in self.api_requests().items()}
        state, queued_at, end_date = rows[0]
        tis = self.stack.metadata(
            "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        )
        ran = [t for t in tis if t[2] not in ("skipped", "removed", None)]
        units = sum(1 for t in tis if t[0] == "employee_sync.phase_1_new_advoware" and t[1] >= 0)
        out = {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": state,
            "wall_s": round(_ts(end_date) - _ts(queued_at), 1),
            "task_instances": len(ran),
            "tries": sum(int(t[3] or 1) for t in ran),
            "units": units,
            "ti_states": dict(Counter(str(t[2]) for t in tis)),
            "cpu_airflow_s": round(cpu_airflow, 1),
            "cpu_sandbox_s": round(cpu_sandbox, 1),
            "machine_busy_cpu_s": round(busy, 1),
            "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "advoware_requests": requests["advoware"],
            "google_requests": requests["google"],
        }
        if dag_id == DAG:
            out["employees_with_work"] = self.employees_with_work(run_id)
        print(
            f"  {label:<14} {state:<8} wall {out['wall_s']:>7.1f} s  task instances {len(ran):>4} "
            f"(tries {out['tries']}, units {units}, employees with work {out.get('employees_with_work', '-')})"
            f"  CPU Airflow {out['cpu_airflow_s']:>7.1f} s  sandbox {out['cpu_sandbox_s']:>6.1f} s"
            f"  machine {out['machine_busy_cpu_s']:>7.1f} s  load {out['load_1min'][0]:.1f} -> "
            f"{out['load_1min'][1]:.1f}  requests Advoware {requests['advoware']} Google {requests['google']}",
            flush=True,
        )
        return out

    def api_requests(self) -> dict[str, int]:
        """Requests the Advoware and Google sandboxes have answered so far (their own counters)."""
        return {
            side: int(self.http.get(f"{self.stack.url(side)}/_sandbox/stats").json()["total_requests"])
            for side in ("advoware", "google")
        }

    def employees_with_work(self, run_id: str) -> int:
        """Employees this run's phase tasks worked for (their run rows count the phases done)."""
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.stack.hub_db}") as conn:
            row = conn.execute(
                "SELECT count(*) FROM sync_runs WHERE run_id = %s AND counts ? 'phases_done'", (run_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def quota(self) -> dict[str, Any]:
        """Google's quotas as the sandbox counted them since the firm was seeded."""
        report: dict[str, Any] = self.http.get(f"{self.stack.url('google')}/_sandbox/quota").json()
        return report

    def bulk_change(self, staff: list[dict[str, Any]]) -> int:
        """One new appointment for every employee in Advoware (a meeting in a week, new frNr each)."""
        adv = self.stack.url("advoware")
        state = self.http.get(f"{adv}/_sandbox/state").json()
        first = max(int(t["frNr"]) for t in state["termine"]) + 1
        day = date.today() + timedelta(days=7)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        termine = [
            {
                "frNr": first + i,
                "text": "Kanzleiversammlung",
                "notiz": "",
                "ort": "",
                "kuerzel": m["kuerzel"],
                "anwalt": m["kuerzel"],
                "datum": f"{day.isoformat()}T09:00:00",
                "uhrzeitVon": "09:00:00",
                "datumBis": f"{day.isoformat()}T10:00:00",
                "uhrzeitBis": "10:00:00",
                "abwesenheit": 0,
                "privat": 0,
                "dauertermin": 0,
                "turnus": 0,
                "turnusArt": 0,
                "erinnerung": 0,
                "erinnerungsDatum": None,
                "nr": None,
                "azRubrum": "",
                "zuletztGeaendertAm": now,
            }
            for i, m in enumerate(staff)
        ]
        self.http.post(f"{adv}/_sandbox/seed", json={"termine": termine}).raise_for_status()
        return len(termine)

    def idle(self, seconds: float) -> tuple[float, dict[str, float]]:
        """CPU per second of the Airflow tree with no run, in all and per component."""
        self.wait_quiet()
        time.sleep(self.args.settle_s)
        components = {name: pid for name, pid in component_pids(self.airflow_pid).items()}
        parts = {name: tree_cpu(pid) for name, pid in components.items()}
        before, started = tree_cpu(self.airflow_pid), time.monotonic()
        time.sleep(seconds)
        took = time.monotonic() - started
        per_s = (tree_cpu(self.airflow_pid) - before) / took
        by_part = {name: round((tree_cpu(pid) - parts[name]) / took, 4) for name, pid in components.items()}
        print(f"idle stack (no run): {per_s:.3f} CPU-s per s over {seconds:.0f} s; by component {by_part}", flush=True)
        return per_s, by_part

    # -- the firm -----------------------------------------------------------------------------------
    def reset_firm(self, employees: int) -> list[dict[str, Any]]:
        """Empty hub, Redis and sandboxes, then the firm of `employees` (all active) seeded."""
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.stack.hub_db}", autocommit=True) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            ]
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")
        import redis

        redis.Redis.from_url(self.stack.env["REDIS_URL"]).flushdb()
        adv, google = self.stack.url("advoware"), self.stack.url("google")
        for url in (adv, google):
            self.http.post(f"{url}/_sandbox/reset").raise_for_status()
        self.http.post(
            f"{google}/_sandbox/config",
            json={"quota_requests": 600, "quota_window_s": 60, "project_quota_requests": 10000, "quota_status": 429},
        ).raise_for_status()
        self.http.post(f"{google}/_sandbox/faults", json={"latency_ms": self.args.google_latency_ms}).raise_for_status()
        self.http.post(f"{adv}/_sandbox/faults", json={"latency_ms": self.args.advoware_latency_ms}).raise_for_status()
        firm = generate_firm(
            SEED, employees=employees, appointments_per_employee=self.args.appointments, parties=0, start=date.today()
        )
        staff = [{**m, "aktiv": True} for m in firm.employees]  # the generator makes one inactive
        self.http.post(f"{google}/_sandbox/seed", json={"seed": SEED, "employees": employees}).raise_for_status()
        self.http.post(
            f"{adv}/_sandbox/seed",
            json={
                "seed": SEED,
                "employees": employees,
                "appointments_per_employee": self.args.appointments,
                "start": date.today().isoformat(),
                "mitarbeiter": staff,
            },
        ).raise_for_status()
        return staff

    def check_converged(self) -> dict[str, int]:
        """Every linked appointment once in Google; no frNr twice in a calendar."""
        from include.calendar_engine.marker import marker_of

        state = self.http.get(f"{self.stack.url('google')}/_sandbox/state").json()
        events = dup = 0
        for cal in state["calendars"]:
            marks = [marker_of(e)[1] for e in cal["events"] if e.get("status") != "cancelled" and marker_of(e)[1]]
            events += len(marks)
            dup += len(marks) - len(set(marks))
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.stack.hub_db}") as conn:
            row = conn.execute("SELECT count(*) FROM calendar_links WHERE status = 'linked'").fetchone()
            assert row is not None  # count(*) answers one row
            linked = row[0]
        return {"events_with_marker": events, "duplicates": dup, "hub_linked": int(linked)}


def _goals(r: dict[str, Any], max_units: int) -> dict[str, bool]:
    """The goals for a firm of this size (on a 2-core machine; met at 1,000, every run a success at 2,000;
    docs/benchmarks.md, "A firm of 1,000 and 2,000")."""
    runs = [r["initial"], *r["noops"], *([r["bulk"]] if r.get("bulk") else [])]
    return {
        "every_run_succeeded": all(x["state"] == "success" for x in runs),
        "converged": all(
            c["duplicates"] == 0 and c["events_with_marker"] == c["hub_linked"] for c in r["converged"].values()
        ),
        "initial_under_15_min": r["initial"]["wall_s"] < 900,
        "bulk_under_15_min": bool(r.get("bulk")) and r["bulk"]["wall_s"] < 900,
        "noop_under_60_s": all(x["wall_s"] < 60 for x in r["noops"]),
        "noop_under_0.05_cpu_s_per_employee": r["noop_cpu_s_per_employee"] < 0.05,
        "task_instances_bounded": max(x["task_instances"] for x in runs) <= 1 + 4 * max_units,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,50,100", help="firm sizes (employees), comma-separated")
    ap.add_argument("--appointments", type=int, default=50, help="per employee (at least 8 are seeded)")
    ap.add_argument("--noop-runs", type=int, default=2)
    ap.add_argument(
        "--no-bulk", dest="bulk", action="store_false", help="skip the run after one new appointment for every employee"
    )
    ap.add_argument("--idle-s", type=float, default=120)
    ap.add_argument("--settle-s", type=float, default=5, help="pause before each measured run")
    ap.add_argument("--advoware-latency-ms", type=float, default=30)
    ap.add_argument("--google-latency-ms", type=float, default=40)
    ap.add_argument("--run-timeout-s", type=float, default=3600)
    ap.add_argument(
        "--max-units",
        type=int,
        default=None,
        help=f"SYNC_MAX_UNITS of the stack (default: the setting's, {DEFAULT_MAX_UNITS})",
    )
    ap.add_argument("--no-floor", dest="floor", action="store_false", help="skip the floor DAG's runs")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    load_before = os.getloadavg()
    env = {"CALENDAR_SYNC_SCHEDULE": "0 0 1 1 *", "GOOGLE_DELEGATION": "true"}
    if args.max_units is not None:
        env["SYNC_MAX_UNITS"] = str(args.max_units)
    results: dict[int, dict[str, Any]] = {}
    idle_per_s: float | None = None
    idle_parts: dict[str, float] = {}
    stack = OwnStack(extra_dags={"calendar_sync_floor.py": FLOOR_DAG}, env=env, prefix="bench-dag-scale-")
    started = time.monotonic()
    stack.up()
    bench = Bench(stack, args)
    try:
        print(
            f"stack up in {time.monotonic() - started:.0f}s (Airflow {stack.url('airflow')}); "
            f"load {load_before[0]:.1f}; {os.cpu_count()} cores",
            flush=True,
        )
        bench.pause("beteiligte_sync")
        idle_per_s, idle_parts = bench.idle(args.idle_s)
        for n in sizes:
            bench.wait_quiet()
            staff = bench.reset_firm(n)
            print(f"N = {n} employees x {max(args.appointments, 8)} appointments", flush=True)
            r: dict[str, Any] = {"converged": {}, "quota": {}}
            r["initial"] = bench.measure(DAG, {}, f"initial-{n}")
            r["converged"]["initial"] = bench.check_converged()
            r["quota"]["initial"] = bench.quota()
            print(f"  converged: {r['converged']['initial']}; Google quota: {r['quota']['initial']}", flush=True)
            r["noops"] = [bench.measure(DAG, {}, f"noop-{n}-{i + 1}") for i in range(args.noop_runs)]
            if args.bulk:
                added = bench.bulk_change(staff)
                r["bulk"] = bench.measure(DAG, {}, f"bulk-{n}")
                r["converged"]["bulk"] = bench.check_converged()
                r["quota"]["bulk"] = bench.quota()
                print(
                    f"  bulk change: {added} new appointments; converged: {r['converged']['bulk']}; "
                    f"Google quota: {r['quota']['bulk']}",
                    flush=True,
                )
            if args.floor:
                r["floor_initial"] = bench.measure(FLOOR, {"work": r["initial"]["units"]}, f"floor-init-{n}")
                r["floor_noop"] = bench.measure(FLOOR, {"work": r["noops"][-1]["units"]}, f"floor-noop-{n}")
            r["noop_cpu_s_per_employee"] = round(statistics.median(x["cpu_airflow_s"] for x in r["noops"]) / n, 3)
            r["goals"] = _goals(r, args.max_units or DEFAULT_MAX_UNITS)
            results[n] = r
            floor = r["floor_noop"]["cpu_airflow_s"] if args.floor else "-"
            print(
                f"  no-op: {r['noop_cpu_s_per_employee']:.3f} CPU-s per employee (median of {len(r['noops'])} "
                f"runs); floor of the same shape {floor} CPU-s; initial {r['initial']['wall_s']} s wall; "
                f"goals {r['goals']}",
                flush=True,
            )
    finally:
        bench.close()
        stack.down()

    def per_n(fn: Any) -> dict[int, Any]:
        return {n: fn(r) for n, r in results.items()}

    out = {
        "bench": "dag_scale",
        "sizes": sizes,
        "appointments_per_employee": max(args.appointments, 8),
        "noop_cpu_s_per_employee": per_n(lambda r: r["noop_cpu_s_per_employee"]),
        "noop_wall_s": per_n(lambda r: [x["wall_s"] for x in r["noops"]]),
        "noop_task_instances": per_n(lambda r: [x["task_instances"] for x in r["noops"]]),
        # what a quiet run costs the APIs, and per hour at a 5-minute schedule (the schedule's price)
        "noop_advoware_requests": per_n(lambda r: [x["advoware_requests"] for x in r["noops"]]),
        "noop_google_requests": per_n(lambda r: [x["google_requests"] for x in r["noops"]]),
        "noop_every_5_min_per_hour": per_n(
            lambda r: {
                "advoware_requests": 12 * statistics.median(x["advoware_requests"] for x in r["noops"]),
                "google_requests": 12 * statistics.median(x["google_requests"] for x in r["noops"]),
                "cpu_airflow_s": round(12 * statistics.median(x["cpu_airflow_s"] for x in r["noops"]), 1),
            }
        ),
        "initial_wall_s": per_n(lambda r: r["initial"]["wall_s"]),
        "initial_cpu_s": per_n(lambda r: r["initial"]["cpu_airflow_s"]),
        "initial_task_instances": per_n(lambda r: r["initial"]["task_instances"]),
        "initial_units": per_n(lambda r: r["initial"]["units"]),
        "bulk_wall_s": per_n(lambda r: r["bulk"]["wall_s"] if r.get("bulk") else None),
        "bulk_cpu_s": per_n(lambda r: r["bulk"]["cpu_airflow_s"] if r.get("bulk") else None),
        "bulk_task_instances": per_n(lambda r: r["bulk"]["task_instances"] if r.get("bulk") else None),
        "bulk_employees_with_work": per_n(lambda r: r["bulk"]["employees_with_work"] if r.get("bulk") else None),
        "floor_cpu_s": per_n(
            lambda r: (
                {"initial_shape": r["floor_initial"]["cpu_airflow_s"], "noop_shape": r["floor_noop"]["cpu_airflow_s"]}
                if args.floor
                else None
            )
        ),
        "floor_wall_s": per_n(
            lambda r: (
                {"initial_shape": r["floor_initial"]["wall_s"], "noop_shape": r["floor_noop"]["wall_s"]}
                if args.floor
                else None
            )
        ),
        "sandbox_cpu_s": per_n(
            lambda r: {
                "initial": r["initial"]["cpu_sandbox_s"],
                "noop": [x["cpu_sandbox_s"] for x in r["noops"]],
                "bulk": r["bulk"]["cpu_sandbox_s"] if r.get("bulk") else None,
            }
        ),
        "machine_busy_cpu_s": per_n(
            lambda r: {
                "initial": r["initial"]["machine_busy_cpu_s"],
                "noop": [x["machine_busy_cpu_s"] for x in r["noops"]],
                "bulk": r["bulk"]["machine_busy_cpu_s"] if r.get("bulk") else None,
            }
        ),
        "load_1min_during": per_n(
            lambda r: {
                "initial": r["initial"]["load_1min"],
                "noop": [x["load_1min"] for x in r["noops"]],
                "bulk": r["bulk"]["load_1min"] if r.get("bulk") else None,
            }
        ),
        "converged": per_n(lambda r: r["converged"]),
        "google_quota": per_n(lambda r: r["quota"]),
        "goals": per_n(lambda r: r["goals"]),
        "idle_cpu_s_per_s": round(idle_per_s, 3) if idle_per_s is not None else None,
        "idle_cpu_s_per_s_by_component": idle_parts,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "max_units": args.max_units or DEFAULT_MAX_UNITS,
        "args": vars(args),
    }
    print(json.dumps(out))
    bad = [n for n, r in results.items() if not (r["goals"]["every_run_succeeded"] and r["goals"]["converged"])]
    return 1 if bad or len(results) != len(sizes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
