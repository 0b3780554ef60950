"""Webhook benchmark, one run, one load generator, two parts.

1. Ingest (`run_ingest`): throughput and latency of the gateway's `POST /webhooks/vmh/beteiligte/update`
   (signature check + atomic Redis enqueue, Redis with AOF and fsync always) against a bare FastAPI
   endpoint that only reads the body, on the same machine.
2. End to end (`run_e2e`): a stack of its own (devstack on free ports, own run dir, Airflow
   home, Redis with AOF, hub database; DAGs folder = the real dags plus a one-task no-op DAG): the time
   from a signed EspoCRM webhook to the Advoware write (the sandbox's write counter), through the
   gateway's trigger and `beteiligte_sync`, next to the time from a REST trigger of the no-op DAG to its
   task's end (Airflow's own floor), interleaved in the same run.

    .venv/bin/python -m bench.webhooks [--duration 15] [--rounds 5] [--concurrency 32] [--rate 200] [--samples 12]

Each server runs in its own process (uvicorn, one worker; the gateway as `python -m webhook_gateway`,
with the edge limits of webhook_gateway/server.py); the load generator is a minimal asyncio
HTTP/1.1 keep-alive client (httpx would be the bottleneck). Latencies at a fixed rate are measured
from the planned send time (no coordinated omission). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench._servers import ROOT, wait_healthy
from sandbox.runner import free_port

SECRET = "bench-webhook-secret"
WEBHOOK_ID = "6650bench0000000a"
PATH = "/webhooks/vmh/beteiligte/update"


# -- servers ----------------------------------------------------------------------------------------
def bare_app() -> Any:
    """The floor: FastAPI reading the body and answering JSON, nothing else."""
    app = FastAPI()

    @app.post(PATH)
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"accepted": body.count(b'"id"'), "duplicates": 0, "rejected": []})

    @app.get("/healthz")  # after the measured route: matching it first costs nothing extra
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _spawn(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, *args], env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_healthy(f"http://127.0.0.1:{port}", proc, timeout_s=30)
    return proc


def _stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _uvicorn(app: str, port: int, *, factory: bool) -> list[str]:
    args = [
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return args + (["--factory"] if factory else [])


# -- load generator -----------------------------------------------------------------------------------
class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


def make_delivery(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    """A realistic update batch: 1-5 parties with a few changed fields, signed like EspoCRM."""
    items = [
        {
            "id": f"{rng.getrandbits(64):017x}"[:17],
            "name": f"Partei {rng.randint(1, 10**6)}",
            "emailAddress": f"p{rng.randint(1, 10**6)}@example.org",
            "phoneNumber": "+49 30 1234567",
        }
        for _ in range(rng.randint(1, 5))
    ]
    body = json.dumps(items, separators=(",", ":")).encode()
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    sig = base64.b64encode(f"{WEBHOOK_ID}:{mac}".encode()).decode()
    return body, {"Content-Type": "application/json", "Signature": sig}


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000, 2) if s else float("nan")


async def closed_loop(port: int, duration_s: float, concurrency: int) -> dict[str, Any]:
    """As fast as possible: `concurrency` connections each send the next request when the last answered."""
    rng = random.Random(1)
    payloads = [make_delivery(rng) for _ in range(2000)]
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration_s

    async def worker(n: int) -> None:
        nonlocal errors
        conn = await Conn.open(port)
        i = n
        try:
            while time.perf_counter() < stop:
                body, headers = payloads[i % len(payloads)]
                i += concurrency
                t = time.perf_counter()
                status = await conn.post(PATH, body, headers)
                latencies.append(time.perf_counter() - t)
                errors += status != 200
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
    }


async def open_loop(port: int, rate: float, duration_s: float, connections: int = 32) -> dict[str, Any]:
    """A fixed arrival rate; latency counted from the planned send time."""
    rng = random.Random(2)
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Conn.open(port))
    latencies: list[float] = []
    errors = 0

    async def one(planned: float, body: bytes, headers: dict[str, str]) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.post(PATH, body, headers)
            latencies.append(time.perf_counter() - planned)
            errors += status != 200
        finally:
            pool.put_nowait(conn)

    n = int(rate * duration_s)
    payloads = [make_delivery(rng) for _ in range(n)]
    t0 = time.perf_counter() + 0.1
    tasks = []
    for i in range(n):
        planned = t0 + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(planned, *payloads[i])))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return {
        "rate": rate,
        "requests": n,
        "errors": errors,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "max_ms": _pct(latencies, 100),
    }


# -- the ingest part ------------------------------------------------------------------------------------
def run_ingest(
    duration_s: float = 10.0,
    concurrency: int = 32,
    rate: float = 200.0,
    fsync: str = "always",
    airflow_url: str | None = None,
    rounds_n: int = 5,
) -> dict[str, Any]:
    """Bare endpoint vs gateway, same load generator; the gateway's Redis is durable (AOF, fsync always).
    Throughput: `rounds_n` alternating rounds of duration_s / rounds_n each; the ratio is the median of
    the rounds' ratios."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    redis_port, bare_port, gw_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[Any]] = []
    try:
        redis_proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(tmp),
                "--appendonly",
                "yes",
                "--appendfsync",
                fsync,
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(redis_proc)
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "ESPOCRM_WEBHOOK_SECRET": SECRET,
            "ESPOCRM_WEBHOOK_ALLOW_UNSIGNED": "false",
            "LOG_LEVEL": "WARNING",
            # no Airflow here: the trigger after each answer fails fast (connection refused), as when
            # Airflow is down; the end-to-end part measures with a real one
            "AIRFLOW_API_URL": f"http://127.0.0.1:{free_port()}" if airflow_url is None else airflow_url,
        }
        bare = _spawn(_uvicorn("bench.webhooks:bare_app", bare_port, factory=True), {}, bare_port)
        procs.append(bare)
        # the gateway as in production: `python -m webhook_gateway` (the edge protocol, its limits)
        gw_env = {**env, "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(gw_port)}
        gateway = _spawn(["-m", "webhook_gateway"], gw_env, gw_port)
        procs.append(gateway)

        async def measure() -> dict[str, Any]:
            servers = (("bare", bare_port, bare.pid), ("gateway", gw_port, gateway.pid))
            for _, port, _ in servers:
                await closed_loop(port, 2.0, concurrency)  # warm-up
            # throughput in alternating rounds: drift on a shared machine hits both sides alike
            rounds: dict[str, list[dict[str, Any]]] = {"bare": [], "gateway": []}
            cpu: dict[str, float] = {"bare": 0.0, "gateway": 0.0}  # server CPU seconds in the rounds
            for _ in range(rounds_n):
                for name, port, pid in servers:
                    before = cpu_seconds(pid)
                    rounds[name].append(await closed_loop(port, duration_s / rounds_n, concurrency))
                    cpu[name] += cpu_seconds(pid) - before
            out: dict[str, Any] = {}
            for name, port, _ in servers:
                runs = rounds[name]
                requests = sum(r["requests"] for r in runs)
                out[name] = {
                    "max_throughput": {
                        "requests": requests,
                        "errors": sum(r["errors"] for r in runs),
                        "rps": round(statistics.median(r["rps"] for r in runs), 1),
                        "rounds_rps": [r["rps"] for r in runs],
                        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                        "p99_ms": max(r["p99_ms"] for r in runs),
                        # unlike req/s, stays meaningful when other work shares the machine
                        "server_cpu_us_per_request": round(cpu[name] * 1e6 / requests, 1) if requests else None,
                    },
                    "at_rate": await open_loop(port, rate, duration_s),
                }
            out["round_ratios"] = [
                round(g["rps"] / b["rps"], 3) for b, g in zip(rounds["bare"], rounds["gateway"], strict=True)
            ]
            return out

        results = asyncio.run(measure())
    finally:
        for p in reversed(procs):
            _stop(p)
    return {
        "bare": results["bare"],
        "gateway": results["gateway"],
        "round_ratios": results["round_ratios"],
        "throughput_ratio_vs_bare": statistics.median(results["round_ratios"]),
        "p99_ms_at_200rps": results["gateway"]["at_rate"]["p99_ms"] if rate == 200 else None,
        "cpus": os.cpu_count(),
    }


# -- the end-to-end part ---------------------------------------------------------------------------------
NOOP_DAG = '''"""bench_noop: one task that does nothing, triggered like beteiligte_sync (Airflow's own floor)."""

from datetime import UTC, datetime

from airflow.sdk import dag, task


@dag(dag_id="bench_noop", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False)
def bench_noop() -> None:
    @task
    def noop() -> None:
        return None

    noop()


bench_noop()
'''


def _stack_env(tmp: Path, redis_port: int, hub_db: str) -> dict[str, str]:
    ports = {
        name: free_port()
        for name in ("advoware", "google", "espocrm", "gateway", "airflow", "worker_logs", "trigger_logs")
    }
    env = {
        **os.environ,
        "DEVSTACK_RUN_DIR": str(tmp / "run"),
        "DEVSTACK_AIRFLOW_HOME": str(tmp / "airflow"),
        "DEVSTACK_DAGS_FOLDER": str(tmp / "dags"),
        "SANDBOX_MODE": "true",
        "LOG_LEVEL": "WARNING",
        "ADVOWARE_BASE_URL": f"http://127.0.0.1:{ports['advoware']}",
        "ESPOCRM_BASE_URL": f"http://127.0.0.1:{ports['espocrm']}",
        "GOOGLE_API_ENDPOINT": f"http://127.0.0.1:{ports['google']}/calendar/v3/",
        "GOOGLE_BATCH_URI": f"http://127.0.0.1:{ports['google']}/batch/calendar/v3",
        "GOOGLE_TOKEN_URI": f"http://127.0.0.1:{ports['google']}/token",
        "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH": str(tmp / "run" / "sa.json"),
        "GATEWAY_PORT": str(ports["gateway"]),
        "AIRFLOW_API_URL": f"http://127.0.0.1:{ports['airflow']}",
        "AIRFLOW_API_USERNAME": "admin",
        "AIRFLOW_API_PASSWORD": f"bench-{random.getrandbits(48):012x}",
        "POSTGRES_DB": hub_db,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_logs"]),
        "SANDBOX_ESPOCRM_AUTO_FLUSH_S": "0",  # the bench sends every webhook itself
    }
    env.pop("AIRFLOW_HOME", None)
    return env


def _devstack(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *cmd],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _sign(webhook_id: str, secret: str, body: bytes) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Signature": base64.b64encode(f"{webhook_id}:{mac}".encode()).decode()}


def _summary(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {
        "p50_s": round(statistics.median(s), 2),
        "min_s": round(s[0], 2),
        "max_s": round(s[-1], 2),
        "p90_s": round(s[min(len(s) - 1, int(0.9 * len(s)))], 2),
    }


def _e2e_samples(
    env: dict[str, str], samples: int, gap_s: tuple[float, float], timeout_s: float, log: Any
) -> dict[str, Any]:
    import httpx

    from include.airflow_api import AirflowApi

    rng = random.Random(3)
    espo_url, adv_url = env["ESPOCRM_BASE_URL"], env["ADVOWARE_BASE_URL"]
    gw_url = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    airflow = AirflowApi(env["AIRFLOW_API_URL"], "admin", env["AIRFLOW_API_PASSWORD"], timeout_s=30)
    espo = httpx.Client(base_url=f"{espo_url}/api/v1", headers={"X-Api-Key": "sandbox-espocrm-key"}, timeout=30)
    http = httpx.Client(timeout=30)
    try:
        # a quiet stack: the calendar DAG is not what is measured here
        airflow.request(
            "PATCH",
            "/api/v2/dags/advoware_calendar_sync",
            params={"update_mask": "is_paused"},
            json={"is_paused": True},
        )
        quiet_by = time.time() + 180  # its first scheduled run (started with the stack) finishes first
        while airflow.list_runs("advoware_calendar_sync", state="running", limit=1)[1] and time.time() < quiet_by:
            time.sleep(2)
        secrets = dict(
            pair.split("=", 1)
            for pair in json.loads((Path(env["DEVSTACK_RUN_DIR"]) / "espocrm-webhooks.json").read_text())[
                "secret"
            ].split(",")
        )
        hooks = {h["event"].split(".")[-1]: h["id"] for h in espo.get("/Webhook").json()["list"] if h["id"] in secrets}

        def advoware_creates() -> int:
            return int(http.get(f"{adv_url}/_sandbox/stats").json()["writes"].get("Beteiligte.create", 0))

        def webhook_sample(i: int) -> float:
            # the party exists in EspoCRM (an API write: skipOwn, so EspoCRM itself sends nothing)
            record = espo.post(
                "/CBeteiligte",
                json={
                    "name": f"Bench {i}",
                    "vorname": "E2E",
                    "ort": "Berlin",
                    "emailAddress": f"bench{i}@mail.example",
                },
            ).json()
            body = json.dumps([{"id": record["id"], "name": record["name"]}]).encode()
            before = advoware_creates()
            t0 = time.time()
            r = http.post(
                f"{gw_url}/webhooks/vmh/beteiligte/create",
                content=body,
                headers=_sign(hooks["create"], secrets[hooks["create"]], body),
            )
            r.raise_for_status()
            while advoware_creates() == before:
                if time.time() - t0 > timeout_s:
                    raise TimeoutError(f"party {record['id']} did not reach Advoware in {timeout_s:.0f}s")
                time.sleep(0.1)
            return time.time() - t0

        def noop_sample() -> float:
            t0 = time.time()
            run = airflow.trigger("bench_noop", dag_run_id=f"bench__{random.getrandbits(64):016x}")
            while airflow.get_run("bench_noop", run.dag_run_id or "")["state"] not in ("success", "failed"):
                if time.time() - t0 > timeout_s:
                    raise TimeoutError(f"bench_noop run {run.dag_run_id} not done in {timeout_s:.0f}s")
                time.sleep(0.2)
            tis = airflow.request("GET", f"/api/v2/dags/bench_noop/dagRuns/{run.dag_run_id}/taskInstances")
            return max(datetime.fromisoformat(t["end_date"]).timestamp() for t in tis.json()["task_instances"]) - t0

        # one warm-up of each (first task processes, first Advoware token), reported but not counted
        warmup = {"webhook_s": round(webhook_sample(-1), 2), "noop_s": round(noop_sample(), 2)}
        log(f"  warm-up: webhook -> Advoware {warmup['webhook_s']}s, no-op DAG {warmup['noop_s']}s")
        webhook_s: list[float] = []
        noop_s: list[float] = []
        for i in range(samples):
            webhook_s.append(webhook_sample(i))
            time.sleep(rng.uniform(*gap_s))
            noop_s.append(noop_sample())
            log(f"  sample {i + 1}/{samples}: webhook -> Advoware {webhook_s[-1]:.1f}s, no-op DAG {noop_s[-1]:.1f}s")
            time.sleep(rng.uniform(*gap_s))
        hub_links = _hub_linked(env)
    finally:
        airflow.close()
        espo.close()
        http.close()
    return {
        "samples": samples,
        "webhook_to_advoware": _summary(webhook_s),
        "noop_dag": _summary(noop_s),
        "warmup": warmup,
        "hub_links_linked": hub_links,
        "raw_webhook_s": [round(x, 2) for x in webhook_s],
        "raw_noop_s": [round(x, 2) for x in noop_s],
    }


def _hub_linked(env: dict[str, str]) -> int:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{env['POSTGRES_DB']}") as conn:
        row = conn.execute("SELECT count(*) FROM party_links WHERE status = 'linked'").fetchone()
        return int(row[0]) if row else 0


def run_e2e(
    samples: int = 12, gap_s: tuple[float, float] = (1.0, 8.0), timeout_s: float = 120.0, log: Any = print
) -> dict[str, Any]:
    """Start a stack of our own, measure, stop exactly it (and its Redis and hub database)."""
    import psycopg

    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-e2e-"))
    (tmp / "dags").mkdir()
    for dag_file in (ROOT / "dags").glob("*.py"):
        shutil.copy(dag_file, tmp / "dags" / dag_file.name)
    (tmp / "dags" / "bench_noop.py").write_text(NOOP_DAG)
    redis_port = free_port()
    hub_db = f"bench_hub_{random.getrandbits(40):010x}"
    redis_proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = _stack_env(tmp, redis_port, hub_db)
    try:
        started = time.monotonic()
        up = _devstack(["up", "--timeout", "300"], env, timeout=360)
        if up.returncode != 0:
            raise RuntimeError(f"devstack up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
        log(f"  e2e stack up in {time.monotonic() - started:.0f}s (Airflow {env['AIRFLOW_API_URL']})")
        return _e2e_samples(env, samples, gap_s, timeout_s, log)
    finally:
        down = _devstack(["down"], env, timeout=180)
        if down.returncode != 0:
            log(f"  devstack down: {down.stderr[-1000:]}")
        _stop(redis_proc)
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{hub_db}" WITH (FORCE)')
        if os.environ.get("BENCH_KEEP_TMP"):
            log(f"  kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of closed loop per server")
    parser.add_argument("--rounds", type=int, default=5, help="alternating throughput rounds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--fsync", default="always", help="Redis appendfsync (diagnosis only)")
    parser.add_argument("--airflow-url", default=None, help="'' = no trigger after the answer")
    parser.add_argument("--samples", type=int, default=12, help="end-to-end samples of each kind")
    parser.add_argument("--skip-ingest", action="store_true", help="diagnosis: only the end-to-end part")
    parser.add_argument("--skip-e2e", action="store_true", help="diagnosis: only the ingest part")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    ingest: dict[str, Any] = {}
    if not args.skip_ingest:
        ingest = run_ingest(args.duration, args.concurrency, args.rate, args.fsync, args.airflow_url, args.rounds)
        for name in ("bare", "gateway"):
            m, r = ingest[name]["max_throughput"], ingest[name]["at_rate"]
            print(
                f"{name:>8}: {m['rps']:>8} req/s median of rounds {m['rounds_rps']} (p50 {m['p50_ms']} ms, "
                f"p99 {m['p99_ms']} ms, {m['errors']} errors; server CPU {m['server_cpu_us_per_request']} us "
                f"per request) | at {r['rate']:.0f} req/s: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                f"max {r['max_ms']} ms",
                flush=True,
            )
        print(f"   ratio: {ingest['throughput_ratio_vs_bare']} (median of rounds {ingest['round_ratios']})", flush=True)
    e2e: dict[str, Any] = {}
    if not args.skip_e2e:
        print("end to end (webhook -> Advoware write, and the no-op DAG), own stack:", flush=True)
        e2e = run_e2e(args.samples, log=lambda msg: print(msg, flush=True))
        w, n = e2e["webhook_to_advoware"], e2e["noop_dag"]
        print(
            f"     e2e: webhook -> Advoware p50 {w['p50_s']} s (min {w['min_s']}, p90 {w['p90_s']}, max "
            f"{w['max_s']}); no-op DAG p50 {n['p50_s']} s (min {n['min_s']}, max {n['max_s']}); "
            f"{e2e['hub_links_linked']}/{e2e['samples'] + 1} parties linked in the hub",
            flush=True,
        )
    print(
        json.dumps(
            {
                "bench": "webhooks",
                "throughput_ratio_vs_bare": ingest.get("throughput_ratio_vs_bare"),
                "p99_ms_at_200rps": ingest.get("p99_ms_at_200rps"),
                "e2e_p50_s": e2e["webhook_to_advoware"]["p50_s"] if e2e else None,
                "noop_dag_e2e_p50_s": e2e["noop_dag"]["p50_s"] if e2e else None,
                "load_avg_before": [round(x, 2) for x in load_before],
                "load_avg_after": [round(x, 2) for x in os.getloadavg()],
                "ingest": ingest,
                "e2e": e2e,
            }
        )
    )


if __name__ == "__main__":
    main()
