"""Benchmark: the calendar sync engine on the sandbox firm.

10 employees x 300 appointments (the seeded firm, every employee active), Advoware sandbox with
30 ms and Google sandbox with 40 ms latency per request, each in its own process; Google in
delegated mode with a quota of 60 requests per 6 s per user (the sandbox answers 429 beyond it, our
Redis limiter keeps below it). The engine runs directly: `runner.sync_employee` per employee, the
employees in parallel threads (one SyncContext: the Advoware client is thread-safe, Google services
are built per thread).

(a) initial full sync: wall time against the quota floor (ceil(R/60) - 1) x 6 s, R = the largest
    number of Calendar API requests one user sent (batch parts count one by one); goal <= 1.5x.
(b) a no-op run: Calendar API and Advoware API requests per employee (goal <= 2 and <= 2; OAuth
    and Advoware token requests are shown apart), wall time.
(c) 1 % of the items changed (half in Advoware, half in Google, by "a person" through the APIs):
    requests of the next run (both APIs) <= 4 per changed item + 40; the changes are checked to
    have arrived on the other side.
(d) the DAG: `dag.test()` of `advoware_calendar_sync` for the no-op case next to a DAG of the same
    shape whose tasks do nothing (Airflow's own overhead), in a child process with a throw-away
    AIRFLOW_HOME and a temp dags folder (bench/_calendar_dag_timing.py). `--skip-dag` leaves it out.

    .venv/bin/python bench/calendar_sync.py [--employees 10] [--appointments 300] [--skip-dag]

Needs PostgreSQL (a throw-away hub database, dropped afterwards) and Redis (a free database number
1..15 is claimed like the tests do, flushed and released afterwards). Last line: JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import redis
from googleapiclient.http import HttpRequest

from bench._servers import ROOT, floor_s, start_sandbox
from include import airflow_env
from include.advoware.client import AdvowareClient
from include.calendar_engine.marker import marker_of
from include.calendar_sync.context import SyncContext
from include.calendar_sync.employees import active_employees
from include.calendar_sync.prepare import RunParams
from include.calendar_sync.runner import new_run_id, sync_employee
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.ratelimit import Backoff
from include.google_calendar.service import CalendarSession
from include.google_calendar.writing import EventWriter
from include.hub.db import migrate
from include.settings import AdvowareSettings, GoogleSettings, Settings, SyncSettings, get_settings
from sandbox.advoware import gateway as adv_sbx
from sandbox.firm import generate_firm
from sandbox.keys import write_service_account_file
from sandbox.runner import free_port

SEED = 4711
NOT_API = {"token", "batch", "Token"}  # OAuth / Advoware token endpoints, batch envelopes (parts count)


def claim_redis_db(url: str) -> tuple[int, str]:
    control = redis.Redis.from_url(url)
    token = uuid.uuid4().hex
    for db in range(1, 16):
        if control.set(f"test:claim:db:{db}", token, nx=True, ex=3600):
            return db, token
    raise RuntimeError("no free Redis database to claim")


class Stats:
    """Request counts of both sandboxes between two points."""

    def __init__(self, http: httpx.Client, advoware_url: str, google_url: str) -> None:
        self.http, self.urls = http, {"advoware": advoware_url, "google": google_url}

    def snap(self) -> dict[str, dict[str, Any]]:
        return {side: self.http.get(f"{url}/_sandbox/stats").json() for side, url in self.urls.items()}

    @staticmethod
    def delta(before: dict, after: dict, side: str) -> dict[str, Any]:
        req = Counter({k: v - before[side]["requests"].get(k, 0) for k, v in after[side]["requests"].items()})
        principals = {
            p: v["requests"] - before[side]["by_principal"].get(p, {}).get("requests", 0)
            for p, v in after[side]["by_principal"].items()
        }
        return {
            "by_endpoint": {k: v for k, v in sorted(req.items()) if v},
            "api": sum(v for k, v in req.items() if k not in NOT_API),
            "tokens": sum(v for k, v in req.items() if k in ("token", "Token")),
            "envelopes": req.get("batch", 0),
            "by_principal": {p: n for p, n in principals.items() if n},
            "writes": after[side]["total_writes"] - before[side]["total_writes"],
        }


def _move_event(service: Any, *, calendar_id: str, event_id: str, frnr: int) -> HttpRequest:
    """A Google-side edit of the bench: the event's location changes."""
    return service.events().patch(calendarId=calendar_id, eventId=event_id, body={"location": f"Raum G{frnr}"})


class Timers:
    """Where the engine's threads spend their time (summed over threads): hub connections opened,
    waiting for the quota limiter, Google batches, single Calendar calls, Advoware calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total: defaultdict[str, float] = defaultdict(float)
        self.count: Counter[str] = Counter()
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        real = getattr(owner, name)

        def timed(*a: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return real(*a, **kw)
            finally:
                with self.lock:
                    self.total[label] += time.perf_counter() - started
                    self.count[label] += 1

        setattr(owner, name, timed)
        self._undo.append((owner, name, real))

    def install(self) -> Timers:
        self.wrap(psycopg, "connect", "hub connect")
        self.wrap(CalendarSession, "acquire_up_to", "quota wait")
        self.wrap(CalendarSession, "execute_batch", "google batch")
        self.wrap(CalendarSession, "execute", "google call")
        self.wrap(AdvowareClient, "_send", "advoware call")
        return self

    def remove(self) -> None:
        for owner, name, real in reversed(self._undo):
            setattr(owner, name, real)

    def reset(self) -> None:
        self.total.clear()
        self.count.clear()

    def line(self) -> str:
        return ", ".join(f"{k} {self.count[k]}x {v:.1f} s" for k, v in sorted(self.total.items()))


def run_all(ctx: SyncContext, employees: list[str], threads: int) -> tuple[float, dict[str, dict[str, Any]]]:
    """Like runner.sync_all, but the employees in parallel threads; returns (wall, results)."""
    run_id = new_run_id("bench")
    started = time.monotonic()
    listed = active_employees(ctx.advoware, ctx.hub, employees)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="employee") as pool:
        futures = {e: pool.submit(sync_employee, ctx, run_id, e, RunParams()) for e in listed}
        results = {}
        for e, f in futures.items():
            try:
                results[e] = f.result()
            except Exception as exc:  # reported, the others go on
                results[e] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return time.monotonic() - started, results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--employees", type=int, default=10)
    ap.add_argument("--appointments", type=int, default=300, help="per employee")
    ap.add_argument("--advoware-latency-ms", type=float, default=30)
    ap.add_argument("--google-latency-ms", type=float, default=40)
    ap.add_argument("--quota", type=int, default=60)
    ap.add_argument("--window-s", type=float, default=6.0)
    ap.add_argument("--changed-percent", type=float, default=1.0)
    ap.add_argument("--skip-dag", action="store_true")
    ap.add_argument(
        "--writer-parallel",
        type=int,
        default=0,
        help="EXPERIMENT: at least this many batches in flight per employee in the executor's "
        "Google writes (patches EventWriter.write_many in this process; 0 = as the executor "
        "does, GOOGLE_BATCH_PARALLEL)",
    )
    args = ap.parse_args(argv)

    base = get_settings()
    if args.writer_parallel:
        real_write_many = EventWriter.write_many

        def write_many(self: EventWriter, ops: Any, *, parallel: int = 1) -> Any:
            return real_write_many(self, ops, parallel=max(parallel, args.writer_parallel))

        EventWriter.write_many = write_many  # type: ignore[method-assign]  # patched for this process only
    tmp = Path(tempfile.mkdtemp(prefix="calsync-bench-"))
    adv_port, g_port = free_port(), free_port()
    adv_url, g_url = f"http://127.0.0.1:{adv_port}", f"http://127.0.0.1:{g_port}"
    key_path = tmp / "sa.json"
    write_service_account_file(key_path, f"{g_url}/token")
    hub_name = f"bench_calsync_{uuid.uuid4().hex[:8]}"
    db, claim = claim_redis_db(base.redis_url)
    redis_url = urlunsplit(urlsplit(base.redis_url)._replace(path=f"/{db}"))
    procs = [start_sandbox("sandbox.advoware", adv_port), start_sandbox("sandbox.google_calendar", g_port, key_path)]
    http = httpx.Client(timeout=120)
    ctx: SyncContext | None = None
    try:
        migrate(base.postgres.dsn(hub_name))
        settings = Settings(
            _env_file=None,
            sandbox_mode=True,
            redis_url=redis_url,
            advoware=AdvowareSettings(
                _env_file=None,
                base_url=adv_url,
                **asdict(adv_sbx.Credentials.from_env()),  # what the sandbox started here accepts
            ),
            google=GoogleSettings(
                _env_file=None,
                calendar_service_account_path=str(key_path),
                delegation=True,
                api_endpoint=f"{g_url}/calendar/v3/",
                batch_uri=f"{g_url}/batch/calendar/v3",
                token_uri=f"{g_url}/token",
                requests_per_window=args.quota,
                window_s=args.window_s,
            ),
            postgres=base.postgres.model_copy(update={"db": hub_name}),
            # (c) checks that a location crossed: anonymised events (the default) carry none to Google
            sync=SyncSettings(_env_file=None, anonymize=False),
        )
        http.post(
            f"{g_url}/_sandbox/config",
            json={"quota_requests": args.quota, "quota_window_s": args.window_s, "quota_status": 429},
        ).raise_for_status()
        http.post(f"{g_url}/_sandbox/faults", json={"latency_ms": args.google_latency_ms}).raise_for_status()
        http.post(f"{adv_url}/_sandbox/faults", json={"latency_ms": args.advoware_latency_ms}).raise_for_status()
        firm = generate_firm(
            SEED, employees=args.employees, appointments_per_employee=args.appointments, parties=0, start=date.today()
        )
        staff = [{**m, "aktiv": True} for m in firm.employees]  # the generator makes one inactive
        seeded = http.post(
            f"{adv_url}/_sandbox/seed",
            json={
                "seed": SEED,
                "employees": args.employees,
                "appointments_per_employee": args.appointments,
                "start": date.today().isoformat(),
                "mitarbeiter": staff,
            },
        ).json()
        employees = sorted(m["kuerzel"] for m in staff)
        emails = {m["kuerzel"]: m["email"] for m in staff}
        ctx = SyncContext.from_settings(settings)
        stats = Stats(http, adv_url, g_url)
        sessions = {e: ctx.google.session_for(emails[e]) for e in employees}
        print(
            f"firm: {len(employees)} employees, {seeded['termine']} Termine; latency Advoware "
            f"{args.advoware_latency_ms:.0f} ms, Google {args.google_latency_ms:.0f} ms; quota "
            f"{args.quota}/{args.window_s:g}s per user (delegated); load {os.getloadavg()[0]:.1f}",
            flush=True,
        )

        # (a) initial full sync
        sent = {e: s.sent for e, s in sessions.items()}
        before = stats.snap()
        timers = Timers().install()
        wall_a, res_a = run_all(ctx, employees, len(employees))
        after = stats.snap()
        timers.remove()
        failed = {e: r for e, r in res_a.items() if r.get("status") != "success"}
        per_user = {e: sessions[e].sent - sent[e] for e in employees}
        floor = floor_s(per_user, args.quota, args.window_s)
        g_a, a_a = stats.delta(before, after, "google"), stats.delta(before, after, "advoware")
        state = http.get(f"{g_url}/_sandbox/state").json()
        events = sum(1 for c in state["calendars"] for e in c["events"] if e.get("status") != "cancelled")
        dup = sum(
            len(ids) - len(set(ids))
            for ids in (
                [marker_of(e)[1] for e in c["events"] if e.get("status") != "cancelled" and marker_of(e)[1]]
                for c in state["calendars"]
            )
        )
        ratio = wall_a / floor if floor else None
        print(
            f"(a) initial: wall {wall_a:.1f} s, floor {floor:.1f} s, ratio {ratio or 0:.2f} (goal <= 1.5); "
            f"R max {max(per_user.values())} per user, Calendar API requests {g_a['api']} in "
            f"{g_a['envelopes']} batches, OAuth tokens {g_a['tokens']}, retries {ctx.google.retries}; "
            f"Advoware requests {a_a['api']}; {events} events in Google, duplicate frNr {dup}; "
            f"failed employees {failed or 'none'}",
            flush=True,
        )
        print(f"    google by endpoint {g_a['by_endpoint']}", flush=True)
        print(f"    time in (summed over {len(employees)} threads): {timers.line()}", flush=True)

        # (b) a no-op run
        time.sleep(args.window_s)  # let the quota windows empty
        before = stats.snap()
        wall_b, res_b = run_all(ctx, employees, len(employees))
        after = stats.snap()
        g_b, a_b = stats.delta(before, after, "google"), stats.delta(before, after, "advoware")
        noop_g, noop_a = g_b["api"] / len(employees), a_b["api"] / len(employees)
        print(
            f"(b) no-op: wall {wall_b:.2f} s; per employee {noop_g:.2f} Calendar API (goal <= 2), "
            f"{noop_a:.2f} Advoware (goal <= 2); writes Google {g_b['writes']}, Advoware {a_b['writes']}; "
            f"OAuth tokens {g_b['tokens']}; google {g_b['by_endpoint']}; advoware {a_b['by_endpoint']}; "
            f"statuses {Counter(r.get('status') for r in res_b.values())}",
            flush=True,
        )

        # (c) 1 % changed, half on each side, by a person through the APIs
        changed = max(2, round(args.employees * args.appointments * args.changed_percent / 100))
        user_adv = AdvowareClient(settings.advoware.model_copy(update={"write_protection": False}), redis_url=redis_url)
        user_google = GoogleCalendarClient(
            settings.google,
            ServiceAccount.from_settings(settings.google),
            limiter=None,
            backoff=Backoff(base_s=0.5, cap_s=4, max_retries=8),
        )
        termine = [
            t
            for t in http.get(f"{adv_url}/_sandbox/state").json()["termine"]
            if t["kuerzel"] in emails and t["frNr"] > 0 and not t["dauertermin"]
        ]
        termine.sort(key=lambda t: (t["frNr"] % 97, t["frNr"]))  # spread over employees, reproducible
        cals = {c["id"]: c for c in http.get(f"{g_url}/_sandbox/state").json()["calendars"]}
        with psycopg.connect(settings.postgres.dsn()) as conn:
            calendar_of: dict[str, str] = dict(
                conn.execute("SELECT employee, calendar_id FROM employee_calendars").fetchall()
            )
        edits_adv, edits_google = termine[: changed // 2], termine[changed // 2 : changed]
        for t in edits_adv:
            user_adv.update_termin(t["frNr"], {**t, "ort": f"Raum A{t['frNr']}"})
        for t in edits_google:
            cal = calendar_of[t["kuerzel"]]
            event = next(e for e in cals[cal]["events"] if marker_of(e)[1] == t["frNr"])
            user_google.session_for(emails[t["kuerzel"]]).execute(
                functools.partial(_move_event, calendar_id=cal, event_id=event["id"], frnr=t["frNr"]),
                "events.patch",
            )
        user_adv.close()
        time.sleep(args.window_s)
        before = stats.snap()
        wall_c, res_c = run_all(ctx, employees, len(employees))
        after = stats.snap()
        g_c, a_c = stats.delta(before, after, "google"), stats.delta(before, after, "advoware")
        changed_requests = g_c["api"] + a_c["api"]
        now_adv = {t["frNr"]: t for t in http.get(f"{adv_url}/_sandbox/state").json()["termine"]}
        now_events = {
            marker_of(e)[1]: e
            for c in http.get(f"{g_url}/_sandbox/state").json()["calendars"]
            for e in c["events"]
            if e.get("status") != "cancelled"
        }
        arrived = sum(now_events[t["frNr"]].get("location") == f"Raum A{t['frNr']}" for t in edits_adv) + sum(
            now_adv[t["frNr"]].get("ort") == f"Raum G{t['frNr']}" for t in edits_google
        )
        goal_c = 4 * changed + 40
        print(
            f"(c) {changed} changed items ({len(edits_adv)} in Advoware, {len(edits_google)} in Google): "
            f"{changed_requests} requests (goal <= {goal_c}; Calendar API {g_c['api']}, Advoware {a_c['api']}), "
            f"wall {wall_c:.2f} s, {arrived}/{changed} arrived; google {g_c['by_endpoint']}; "
            f"advoware {a_c['by_endpoint']}",
            flush=True,
        )

        # (d) the DAG, no-op, next to a DAG of the same shape doing nothing
        dag: dict[str, Any] = {}
        if not args.skip_dag:
            dag = run_dag_timing(settings, employees, tmp)
            print(
                f"(d) dag.test(): advoware_calendar_sync no-op {dag.get('dag_noop_wall_s')} s "
                f"({dag.get('dag_noop_state')}), empty DAG of the same shape {dag.get('empty_dag_wall_s')} s "
                f"({dag.get('empty_dag_state')}), {dag.get('dag_noop_task_instances')} task instances",
                flush=True,
            )

        result = {
            "bench": "calendar_sync",
            "employees": len(employees),
            "appointments": seeded["termine"],
            "initial_wall_s": round(wall_a, 2),
            "quota_floor_s": round(floor, 2),
            "initial_ratio_to_floor": round(ratio, 3) if ratio else None,
            "initial_max_requests_per_user": max(per_user.values()),
            "initial_duplicates": dup,
            "noop_google_requests_per_employee": round(noop_g, 2),
            "noop_advoware_requests_per_employee": round(noop_a, 2),
            "noop_wall_s": round(wall_b, 2),
            "changed_items": changed,
            "changed_requests": changed_requests,
            "changed_goal": goal_c,
            "changed_arrived": arrived,
            "changed_wall_s": round(wall_c, 2),
            "dag_noop_wall_s": dag.get("dag_noop_wall_s"),
            "empty_dag_wall_s": dag.get("empty_dag_wall_s"),
            "load_1min": round(os.getloadavg()[0], 2),
            "writer_parallel": args.writer_parallel or None,
        }
        print(json.dumps(result))
        ok = not failed and dup == 0 and arrived == changed
        return 0 if ok else 1
    finally:
        if ctx is not None:
            ctx.close()
        http.close()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        redis.Redis.from_url(redis_url).flushdb()
        control = redis.Redis.from_url(base.redis_url)
        if control.get(f"test:claim:db:{db}") == claim.encode():
            control.delete(f"test:claim:db:{db}")
        with psycopg.connect(base.postgres.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{hub_name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


def run_dag_timing(settings: Settings, employees: list[str], tmp: Path) -> dict[str, Any]:
    """bench/_calendar_dag_timing.py in a child process: own AIRFLOW_HOME, temp dags folder."""
    dags = tmp / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "dags" / "advoware_calendar_sync.py", dags / "advoware_calendar_sync.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ADVOWARE_", "GOOGLE_", "SYNC_"))}
    env.update(airflow_env.connections(settings, root=tmp))
    env.update(
        {
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
            "REDIS_URL": settings.redis_url,
            "GOOGLE_REQUESTS_PER_WINDOW": str(settings.google.requests_per_window),
            "GOOGLE_WINDOW_S": str(settings.google.window_s),
            "ADVOWARE_WRITE_PROTECTION": "false",
            "CALENDAR_SYNC_RETRY_DELAY_S": "0",
        }
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "_calendar_dag_timing.py"), str(dags), json.dumps(employees)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0 or not last.startswith("{"):
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": f"exit {proc.returncode}"}
    return json.loads(last)


if __name__ == "__main__":
    raise SystemExit(main())
