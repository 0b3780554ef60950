"""Benchmark: how long a change takes to cross, with Google's push notifications and proxy-triggered
targeted runs, against the schedule alone.

A stack of its own as `make demo` runs it (bench/_stack.py: sandboxes, gateway, `airflow standalone`
with the LocalExecutor and parallelism 4, its own Redis and hub; GATEWAY_PUBLIC_URL = its gateway, so
the Google sandbox delivers notifications there; SYNC_ANONYMIZE=false so the bench follows titles). A
firm of `--employees` (10), the firm's first run, then a watch channel for every employee's calendar.

1. Push on. Edits by Google users (events inserted in the employee's calendar through the API, as the
   Google Calendar app does): `--single` one at a time (each waited for, then the stack left to become
   quiet), and `--bursts` bursts of `--burst-size` edits at once (different employees, and two for one
   employee). Per edit: seconds from the edit to the appointment being held by Advoware (its sandbox
   polled every 0.1 s). Then `--proxy-writes` appointments written through the gateway's Advoware
   proxy, each followed to the employee's Google calendar.
2. Echoes: after each edit has crossed and its run has ended, the writes both sandboxes receive until
   the stack is quiet again (no mark pending, no targeted run queued or running, for 3 s) are writes
   the notifications of the sync's own writes caused: `echo_writes`.
3. Baseline, push off (the sandbox loses every notification; edits straight through Google as before):
   `--baseline-edits` edits at random moments over one cycle of the demo's schedule
   (`CALENDAR_SYNC_SCHEDULE`, */15 minutes), each followed until Advoware holds it.

    .venv/bin/python -m bench.latency [--employees 10] [--single 20] [--bursts 4] [--burst-size 3]
        [--proxy-writes 10] [--baseline-edits 10] [--schedule-s 900]

Last line: JSON with google_to_advoware_p50_s/p95_s/max_s, proxy_to_google_p50_s/p95_s/max_s,
baseline_google_to_advoware_p50_s/p95_s/max_s, echo_writes, the counts, the goals and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import redis

from bench._stack import OwnStack
from include.airflow_api import AirflowApi
from include.dag_ids import CALENDAR_EMPLOYEE_SYNC_DAG, CALENDAR_SYNC_DAG
from include.hub import channels as hub_channels
from include.settings import Settings

POLL_S = 0.1
QUIET_S = 3.0


class PushStack(OwnStack):
    """The demo stack whose Google sandbox notifies its own gateway."""

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        env["GATEWAY_PUBLIC_URL"] = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        return env


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 2)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_s": pct(values, 0.5),
        "p95_s": pct(values, 0.95),
        "max_s": round(max(values), 2) if values else None,
        "mean_s": round(statistics.mean(values), 2) if values else None,
    }


class Bench:
    def __init__(self, stack: OwnStack, args: argparse.Namespace) -> None:
        self.stack, self.args = stack, args
        self.http = httpx.Client(timeout=60)
        self.api = AirflowApi(stack.url("airflow"), "admin", stack.env["AIRFLOW_API_PASSWORD"], timeout_s=60)
        self.redis = redis.Redis.from_url(stack.env["REDIS_URL"])
        self.hub_dsn = f"postgresql://postgres@127.0.0.1:5432/{stack.hub_db}"
        self.adv, self.google, self.gateway = stack.url("advoware"), stack.url("google"), stack.url("gateway")
        env_settings = {k: v for k, v in stack.env.items() if k.isupper()}
        old = dict(os.environ)
        os.environ.update(env_settings)
        try:
            self.settings = Settings()
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.gclient = self._google_client()
        self.counter = 0
        self.echo_writes = 0
        self.echo_runs = 0

    def _google_client(self) -> Any:
        from include.google_calendar.client import GoogleCalendarClient

        return GoogleCalendarClient.from_settings(self.settings.google, redis_url=self.stack.env["REDIS_URL"])

    def close(self) -> None:
        self.http.close()
        self.api.close()

    # -- the stack ----------------------------------------------------------------------------------
    def wait_run(self, dag_id: str, run_id: str, timeout_s: float = 900) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = self.stack.metadata("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
            if rows and rows[0][0] in ("success", "failed"):
                return str(rows[0][0])
            time.sleep(1)
        raise TimeoutError(f"{dag_id} {run_id} did not finish")

    def targeted_active(self) -> int:
        return int(
            self.stack.metadata(
                "SELECT count(*) FROM dag_run WHERE dag_id = ? AND state IN ('queued', 'running')",
                (CALENDAR_EMPLOYEE_SYNC_DAG,),
            )[0][0]
        )

    def wait_quiet(self, timeout_s: float = 300) -> None:
        """No mark pending and no targeted run queued or running, QUIET_S in a row."""
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            busy = self.redis.zcard("push:pending") or self.targeted_active()
            now = time.monotonic()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= QUIET_S:
                return
            time.sleep(0.25)
        raise TimeoutError("the stack did not become quiet")

    def writes(self) -> int:
        return sum(
            int(self.http.get(f"{url}/_sandbox/stats").json()["total_writes"]) for url in (self.adv, self.google)
        )

    def employees(self) -> dict[str, tuple[str, str | None]]:
        with psycopg.connect(self.hub_dsn) as conn:
            rows = conn.execute(
                "SELECT employee, calendar_id, email FROM employee_calendars "
                "WHERE active AND calendar_id IS NOT NULL ORDER BY employee"
            ).fetchall()
        return {e: (c, m) for e, c, m in rows}

    def ensure_channels(self) -> int:
        """A watch channel per employee: the planning's (include/calendar_push/) if it made them, else
        opened here the same way (events.watch, recorded in the hub)."""
        staff = self.employees()
        with psycopg.connect(self.hub_dsn, row_factory=psycopg.rows.dict_row) as conn:
            have = {c.employee for c in hub_channels.active(conn)}
            address = self.stack.env["GATEWAY_PUBLIC_URL"].rstrip("/") + "/webhooks/google/calendar"
            for employee, (calendar_id, email) in staff.items():
                if employee in have:
                    continue
                channel_id, token = str(uuid.uuid4()), uuid.uuid4().hex
                session = self.gclient.session_for(email)
                answer = session.request(
                    lambda s, c=calendar_id, i=channel_id, t=token: s.events().watch(
                        calendarId=c, body={"id": i, "type": "web_hook", "address": address, "token": t}
                    )
                ).execute()
                expires = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC)
                hub_channels.add(
                    conn,
                    channel_id=channel_id,
                    employee=employee,
                    calendar_id=calendar_id,
                    resource_id=answer["resourceId"],
                    token=token,
                    address=address,
                    expires_at=expires,
                )
                conn.commit()
        return len(staff)

    # -- edits ----------------------------------------------------------------------------------------
    def _slot(self) -> tuple[str, str]:
        self.counter += 1
        day = date.today() + timedelta(days=2 + self.counter % 20)
        hour = 7 + self.counter % 11
        return f"{day.isoformat()}T{hour:02d}:00:00", f"{day.isoformat()}T{hour:02d}:30:00"

    def google_edit(self, employee: str) -> str:
        """A person's new event in the employee's calendar; returns its (unique) title."""
        calendar_id, email = self.employees()[employee]
        title = f"Latenz G{self.counter + 1} {uuid.uuid4().hex[:6]}"
        start, end = self._slot()
        body = {
            "summary": title,
            "start": {"dateTime": start, "timeZone": "Europe/Berlin"},
            "end": {"dateTime": end, "timeZone": "Europe/Berlin"},
        }
        for attempt in (1, 2):
            try:
                session = self.gclient.session_for(email)
                session.request(lambda s: s.events().insert(calendarId=calendar_id, body=body)).execute()
                return title
            except (ConnectionError, OSError):  # a kept-alive connection the sandbox closed while idle
                if attempt == 2:
                    raise
                self.gclient = self._google_client()
        return title

    def proxy_write(self, employee: str) -> str:
        title = f"Latenz P{self.counter + 1} {uuid.uuid4().hex[:6]}"
        start, end = self._slot()
        body = {
            "text": title,
            "notiz": "",
            "ort": "",
            "kuerzel": employee,
            "anwalt": employee,
            "privat": 0,
            "abwesenheit": 0,
            "datum": start,
            "uhrzeitVon": start[11:],
            "datumBis": end,
            "uhrzeitBis": end[11:],
        }
        token = self.settings.gateway.api_token.get_secret_value()
        r = self.http.post(
            f"{self.gateway}/api/advoware/Termine", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        r.raise_for_status()
        return title

    def in_advoware(self, titles: set[str]) -> set[str]:
        state = self.http.get(f"{self.adv}/_sandbox/state").json()
        return titles & {t.get("text") for t in state["termine"]}

    def in_google(self, titles: set[str]) -> set[str]:
        state = self.http.get(f"{self.google}/_sandbox/state").json()
        found = {e.get("summary") for c in state["calendars"] for e in c["events"] if e.get("status") != "cancelled"}
        return titles & found

    def follow(self, started: dict[str, float], side: str, timeout_s: float) -> dict[str, float]:
        """Seconds from each edit to its title being held by `side` ("advoware" or "google")."""
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout_s
        look = self.in_advoware if side == "advoware" else self.in_google
        while len(seen) < len(started) and time.monotonic() < deadline:
            now = time.monotonic()
            for title in look(set(started) - set(seen)):
                seen[title] = now - started[title]
            time.sleep(POLL_S)
        missing = set(started) - set(seen)
        if missing:
            print(f"  not crossed within {timeout_s:.0f} s: {len(missing)}", flush=True)
        return seen

    def echo_after(self) -> None:
        """The writes between the crossing run's end and quiet: caused by echoes only."""
        self.wait_targeted_idle()
        before, runs_before = self.writes(), self.targeted_runs()
        self.wait_quiet()
        self.echo_writes += self.writes() - before
        self.echo_runs += self.targeted_runs() - runs_before

    def wait_targeted_idle(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.targeted_active() and time.monotonic() < deadline:
            time.sleep(0.1)

    def targeted_runs(self) -> int:
        return int(
            self.stack.metadata("SELECT count(*) FROM dag_run WHERE dag_id = ?", (CALENDAR_EMPLOYEE_SYNC_DAG,))[0][0]
        )

    # -- the phases -----------------------------------------------------------------------------------
    def push_phase(self) -> tuple[list[float], list[float]]:
        staff = sorted(self.employees())
        g_to_a: list[float] = []
        for i in range(self.args.single):
            employee = staff[i % len(staff)]
            t0 = time.monotonic()
            title = self.google_edit(employee)
            g_to_a += self.follow({title: t0}, "advoware", self.args.timeout_s).values()
            self.echo_after()
            print(f"  single {i + 1:>2}: {g_to_a[-1] if g_to_a else float('nan'):.2f} s", flush=True)
        for b in range(self.args.bursts):
            chosen = random.sample(staff, min(len(staff), self.args.burst_size - 1)) + [staff[b % len(staff)]]
            started: dict[str, float] = {}
            for employee in chosen:
                t0 = time.monotonic()
                started[self.google_edit(employee)] = t0
            crossed = self.follow(started, "advoware", self.args.timeout_s)
            g_to_a += crossed.values()
            self.echo_after()
            print(
                f"  burst {b + 1}: {len(chosen)} edits, max {max(crossed.values(), default=float('nan')):.2f} s",
                flush=True,
            )
        p_to_g: list[float] = []
        for i in range(self.args.proxy_writes):
            employee = staff[(i * 3) % len(staff)]
            t0 = time.monotonic()
            title = self.proxy_write(employee)
            p_to_g += self.follow({title: t0}, "google", self.args.timeout_s).values()
            self.echo_after()
            print(f"  proxy {i + 1:>2}: {p_to_g[-1] if p_to_g else float('nan'):.2f} s", flush=True)
        return g_to_a, p_to_g

    def baseline_phase(self) -> list[float]:
        """Push off: every notification lost; the edits spread over one schedule cycle."""
        self.http.post(f"{self.google}/_sandbox/config", json={"push_loss": 1.0}).raise_for_status()
        staff = sorted(self.employees())
        offsets = sorted(random.uniform(0, self.args.schedule_s) for _ in range(self.args.baseline_edits))
        started: dict[str, float] = {}
        begin = time.monotonic()
        crossed: dict[str, float] = {}
        lock = threading.Lock()

        def watch() -> None:
            while True:
                with lock:
                    pending = {t: s for t, s in started.items() if t not in crossed}
                    done = len(started) == self.args.baseline_edits
                if done and not pending:
                    return
                if time.monotonic() - begin > self.args.schedule_s * 2 + self.args.timeout_s:
                    return
                now = time.monotonic()
                for title in self.in_advoware(set(pending)):
                    with lock:
                        crossed[title] = now - started[title]
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for i, offset in enumerate(offsets):
            time.sleep(max(0.0, begin + offset - time.monotonic()))
            t0 = time.monotonic()
            title = self.google_edit(staff[i % len(staff)])
            with lock:
                started[title] = t0
            print(f"  baseline edit {i + 1} at +{offset:.0f} s", flush=True)
        watcher.join()
        return list(crossed.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--employees", type=int, default=10)
    parser.add_argument("--appointments", type=int, default=20)
    parser.add_argument("--single", type=int, default=20)
    parser.add_argument("--bursts", type=int, default=4)
    parser.add_argument("--burst-size", type=int, default=3)
    parser.add_argument("--proxy-writes", type=int, default=10)
    parser.add_argument("--baseline-edits", type=int, default=10)
    parser.add_argument("--schedule-s", type=float, default=900.0, help="the demo's schedule: */15 min")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    random.seed(18)

    load = [round(os.getloadavg()[0], 2)]
    stack = PushStack(
        env={"SYNC_ANONYMIZE": "false", "PUSH_DEBOUNCE_S": "1.5", "LOG_LEVEL": "INFO"}, prefix="bench-latency-"
    )
    print("starting the stack ...", flush=True)
    stack.up()
    bench = Bench(stack, args)
    try:
        bench.http.post(
            f"{bench.adv}/_sandbox/seed",
            json={
                "seed": 18,
                "employees": args.employees,
                "appointments_per_employee": args.appointments,
                "start": date.today().isoformat(),
            },
        ).raise_for_status()
        bench.http.post(f"{bench.google}/_sandbox/seed", json={"seed": 18, "employees": args.employees})
        first = "bench__latency__first"
        bench.api.trigger(CALENDAR_SYNC_DAG, {}, dag_run_id=first)
        state = bench.wait_run(CALENDAR_SYNC_DAG, first)
        print(f"firm's first run: {state}; {len(bench.employees())} employees with calendars", flush=True)
        print(f"watch channels: {bench.ensure_channels()}", flush=True)
        bench.wait_quiet()
        g_to_a, p_to_g = bench.push_phase()
        load.append(round(os.getloadavg()[0], 2))
        # the push phase's figures first: a failure in the long baseline must not lose them
        print(
            json.dumps(
                {
                    "phase": "push",
                    "google_to_advoware": summary(g_to_a),
                    "proxy_to_google": summary(p_to_g),
                    "echo_writes": bench.echo_writes,
                    "echo_runs": bench.echo_runs,
                    "google_to_advoware_s": [round(x, 2) for x in g_to_a],
                    "proxy_to_google_s": [round(x, 2) for x in p_to_g],
                }
            ),
            flush=True,
        )
        print("baseline (push off, the schedule alone) ...", flush=True)
        baseline = bench.baseline_phase()
        load.append(round(os.getloadavg()[0], 2))
        push = bench.http.get(f"{bench.google}/_sandbox/push").json().get("counts", {})
    finally:
        bench.close()
        stack.down()

    g, p, b = summary(g_to_a), summary(p_to_g), summary(baseline)
    out = {
        "bench": "latency",
        "employees": args.employees,
        "google_edits": args.single + args.bursts * args.burst_size,
        "google_crossed": g["n"],
        "google_to_advoware_p50_s": g["p50_s"],
        "google_to_advoware_p95_s": g["p95_s"],
        "google_to_advoware_max_s": g["max_s"],
        "proxy_writes": args.proxy_writes,
        "proxy_crossed": p["n"],
        "proxy_to_google_p50_s": p["p50_s"],
        "proxy_to_google_p95_s": p["p95_s"],
        "proxy_to_google_max_s": p["max_s"],
        "baseline_edits": args.baseline_edits,
        "baseline_crossed": b["n"],
        "baseline_google_to_advoware_p50_s": b["p50_s"],
        "baseline_google_to_advoware_p95_s": b["p95_s"],
        "baseline_google_to_advoware_max_s": b["max_s"],
        "baseline_schedule_s": args.schedule_s,
        "echo_writes": bench.echo_writes,
        "echo_runs": bench.echo_runs,
        "sandbox_push_counts": push,
        "load_1min": load,
        "goals": {
            "g2a_p50_le_5s": (g["p50_s"] or 1e9) <= 5,
            "g2a_p95_le_15s": (g["p95_s"] or 1e9) <= 15,
            "proxy_p50_le_5s": (p["p50_s"] or 1e9) <= 5,
            "echo_writes_0": bench.echo_writes == 0,
        },
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
