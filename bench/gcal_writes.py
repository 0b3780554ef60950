"""Benchmark: Google Calendar writes within the per-user quota.

Delegated mode, 10 employees x 300 events against the Google sandbox (started here in its own
process) with 40 ms latency per HTTP request and a quota of 60 requests per 6 s per user (the
600/min rate, binding within the run). Each employee writes from its own thread in batches of up
to 50, sized by the shared Redis limiter so the sandbox has nothing to reject.

Floor: a user sending R requests needs at least (ceil(R/60) - 1) x 6 s; the largest over users.
Baseline (the seed's behaviour, same run): one employee's 300 events one call at a time with a
100 ms pause. Last line: JSON with the figures.

    .venv/bin/python bench/gcal_writes.py [--employees 10] [--events 300] [--baseline-events 300]

Needs PostgreSQL (a throw-away hub database is created and dropped) and Redis (REDIS_URL; keys
under a unique prefix, deleted afterwards).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench._servers import floor_s, start_sandbox
from include.calendar_engine.ids import event_id
from include.calendar_engine.marker import with_advoware_properties
from include.calendar_sync.calendars import provision
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.ratelimit import Backoff, RateLimiter
from include.google_calendar.writing import EventWriter, WriteOp
from include.hub.db import Hub, migrate
from include.settings import GoogleSettings, get_settings
from sandbox.keys import write_service_account_file
from sandbox.runner import free_port


# The sandbox runs in a child process so its event loop does not share our GIL.
def appointment(employee: str, n: int) -> dict[str, Any]:
    start = datetime(2025, 3, 3, 8, 0) + timedelta(days=n // 8, hours=n % 8)
    body = {
        "summary": f"Termin {n}",
        "start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
        "end": {"dateTime": (start + timedelta(minutes=45)).isoformat(), "timeZone": "Europe/Berlin"},
    }
    return with_advoware_properties(body, employee, n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--employees", type=int, default=10)
    ap.add_argument("--events", type=int, default=300, help="events per employee")
    ap.add_argument("--baseline-events", type=int, default=300)
    ap.add_argument("--latency-ms", type=float, default=40)
    ap.add_argument("--quota", type=int, default=60)
    ap.add_argument("--window-s", type=float, default=6.0)
    ap.add_argument(
        "--margin-s",
        type=float,
        default=0.0,
        help="extra slack the limiter adds to the window (tokens already count from the answer)",
    )
    ap.add_argument(
        "--parallel",
        type=int,
        default=6,
        help="batches in flight per employee (the window's budget is split between them)",
    )
    args = ap.parse_args(argv)

    settings_all = get_settings()
    tmp = Path(tempfile.mkdtemp(prefix="gcal-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    key_path = tmp / "sa.json"
    write_service_account_file(key_path, f"{url}/token")
    hub_name = f"bench_gcal_{uuid.uuid4().hex[:8]}"
    hub_dsn = settings_all.postgres.dsn(hub_name)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:gcal:ratelimit:"
    rds = redis.Redis.from_url(settings_all.redis_url)
    proc = start_sandbox("sandbox.google_calendar", port, key_path)
    try:
        migrate(hub_dsn)
        gs = GoogleSettings(
            _env_file=None,
            calendar_service_account_path=str(key_path),
            delegation=True,
            api_endpoint=f"{url}/calendar/v3/",
            batch_uri=f"{url}/batch/calendar/v3",
            token_uri=f"{url}/token",
            requests_per_window=args.quota,
            window_s=args.window_s,
        )
        account = ServiceAccount.from_settings(gs)
        limiter = RateLimiter(rds, limit=args.quota, window_s=args.window_s, margin_s=args.margin_s, prefix=prefix)
        client = GoogleCalendarClient(
            gs, account, limiter=limiter, backoff=Backoff(base_s=0.5, cap_s=8.0, max_retries=10)
        )
        httpx.post(
            f"{url}/_sandbox/config",
            json={"quota_requests": args.quota, "quota_window_s": args.window_s, "quota_status": 429},
            timeout=10,
        ).raise_for_status()
        httpx.post(f"{url}/_sandbox/faults", json={"latency_ms": args.latency_ms}, timeout=10).raise_for_status()

        employees = [(f"E{i:02d}", f"e{i:02d}@kanzlei.example") for i in range(args.employees)]
        base_emp = ("BASE", "base@kanzlei.example")
        with Hub(hub_dsn) as hub:
            calendars = {emp: provision(client, hub, emp, email).calendar_id for emp, email in [*employees, base_emp]}
        # Build services (and fetch tokens) outside the timed part, then let the quota windows empty.
        time.sleep(args.window_s + args.margin_s)

        before = httpx.get(f"{url}/_sandbox/stats", timeout=10).json()
        retries_before = client.retries
        sent_before = {email: client.session_for(email).sent for _, email in employees}
        errors: list[BaseException] = []
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def run(emp: str, email: str) -> None:
            try:
                writer = EventWriter(client.session_for(email), calendars[emp])
                ops = [WriteOp.insert(event_id(emp, n), appointment(emp, n)) for n in range(args.events)]
                results = writer.write_many(ops, parallel=args.parallel)
                with lock:
                    outcomes.update(r.outcome for r in results)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=e, name=f"emp-{e[0]}") for e in employees]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        after = httpx.get(f"{url}/_sandbox/stats", timeout=10).json()
        if errors:
            raise errors[0]
        retries = client.retries - retries_before
        # R per user = calls that count against the quota (batch parts, not the batch envelopes).
        per_user = {email: client.session_for(email).sent - sent_before[email] for _, email in employees}
        requests = sum(per_user.values())
        server_calls = sum(v - before["requests"].get(k, 0) for k, v in after["requests"].items() if k != "batch")
        envelopes = after["requests"].get("batch", 0) - before["requests"].get("batch", 0)
        floor = floor_s(per_user, args.quota, args.window_s)

        # Baseline: the seed's way, one insert at a time with a 100 ms pause, no batching.
        base_client = GoogleCalendarClient(
            gs, account, limiter=None, backoff=Backoff(base_s=0.5, cap_s=8.0, max_retries=10)
        )
        base_writer = EventWriter(base_client.session_for(base_emp[1]), calendars[base_emp[0]])
        t1 = time.monotonic()
        for n in range(args.baseline_events):
            base_writer.apply(WriteOp.insert(event_id(base_emp[0], n), appointment(base_emp[0], n)))
            time.sleep(0.1)
        base_wall = time.monotonic() - t1

        state = httpx.get(f"{url}/_sandbox/state", timeout=60).json()
        counts = {c["id"]: len(c["events"]) for c in state["calendars"]}
        ids_ok = all(len({e["id"] for e in c["events"]}) == len(c["events"]) for c in state["calendars"])
        written = sum(counts[calendars[emp]] for emp, _ in employees)

        eps = args.events / wall
        base_eps = args.baseline_events / base_wall
        print(
            f"employees {args.employees} x {args.events} events, latency {args.latency_ms:.0f} ms, "
            f"quota {args.quota}/{args.window_s:g}s per user"
        )
        print(
            f"batched: wall {wall:.2f} s, floor {floor:.1f} s, ratio {wall / floor if floor else 0:.3f}, "
            f"requests {requests} (server counted {server_calls} calls in {envelopes} batches; "
            f"max per user {max(per_user.values())}), retries {retries}, "
            f"outcomes {dict(outcomes)}, events in Google {written}, unique ids {ids_ok}"
        )
        print(
            f"baseline (1 employee, one call at a time + 100 ms): {args.baseline_events} events in "
            f"{base_wall:.2f} s = {base_eps:.2f} events/s; batched {eps:.2f} events/s per employee "
            f"({eps / base_eps:.1f}x)"
        )
        result = {
            "bench": "gcal_writes",
            "events": written,
            "wall_s": round(wall, 3),
            "quota_floor_s": round(floor, 3),
            "ratio_to_floor": round(wall / floor, 3) if floor else None,
            "events_per_s_per_employee": round(eps, 3),
            "baseline_events_per_s_per_employee": round(base_eps, 3),
            "retries": retries,
            "requests": requests,
            "batches": envelopes,
            "parallel": args.parallel,
            "employees": args.employees,
            "events_per_employee": args.events,
            "latency_ms": args.latency_ms,
            "quota": f"{args.quota}/{args.window_s:g}s",
            "baseline_wall_s": round(base_wall, 3),
            "unique_ids": ids_ok,
        }
        print(json.dumps(result))
        return 0 if written == args.employees * args.events and ids_ok else 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for key in rds.scan_iter(f"{prefix}*"):
            rds.delete(key)
        with psycopg.connect(settings_all.postgres.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{hub_name}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
