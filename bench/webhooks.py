"""Webhook benchmark. Part 1 (this file, `run_ingest`): ingest throughput and latency of the gateway's
`POST /webhooks/vmh/beteiligte/update` (signature check + atomic Redis enqueue, Redis with AOF and
fsync always) against a bare FastAPI endpoint that only reads the body, on the same machine, with
one load generator. Part 2 (end-to-end through Airflow standalone, `run_e2e`) is not written yet.

    .venv/bin/python -m bench.webhooks [--duration 10] [--concurrency 32] [--rate 200]

Each server runs in its own process (uvicorn, one worker); the load generator is a minimal asyncio
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
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.runner import free_port

ROOT = Path(__file__).resolve().parent.parent
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

    return app


def _spawn(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, *args], env={**os.environ, **env}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args} exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{args} did not start")


def _stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _uvicorn(app: str, port: int, *, factory: bool) -> list[str]:
    args = ["-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log"]
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
    items = [{"id": f"{rng.getrandbits(64):017x}"[:17], "name": f"Partei {rng.randint(1, 10**6)}",
              "emailAddress": f"p{rng.randint(1, 10**6)}@example.org", "phoneNumber": "+49 30 1234567"}
             for _ in range(rng.randint(1, 5))]
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
    return {"requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99)}


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
    return {"rate": rate, "requests": n, "errors": errors, "p50_ms": _pct(latencies, 50),
            "p99_ms": _pct(latencies, 99), "max_ms": _pct(latencies, 100)}


# -- the ingest part ------------------------------------------------------------------------------------
def run_ingest(duration_s: float = 10.0, concurrency: int = 32, rate: float = 200.0,
               fsync: str = "always", airflow_url: str | None = None) -> dict[str, Any]:
    """Bare endpoint vs gateway, same load generator; the gateway's Redis is durable (AOF, fsync always)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    redis_port, bare_port, gw_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[Any]] = []
    try:
        redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(tmp),
             "--appendonly", "yes", "--appendfsync", fsync, "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(redis_proc)
        env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "ESPOCRM_WEBHOOK_SECRET": SECRET,
               "ESPOCRM_WEBHOOK_ALLOW_UNSIGNED": "false", "LOG_LEVEL": "WARNING",
               # no Airflow here: the trigger after each answer fails fast (connection refused), as when
               # Airflow is down; the end-to-end part measures with a real one
               "AIRFLOW_API_URL": f"http://127.0.0.1:{free_port()}" if airflow_url is None else airflow_url}
        procs.append(_spawn(_uvicorn("bench.webhooks:bare_app", bare_port, factory=True), {}, bare_port))
        procs.append(_spawn(_uvicorn("webhook_gateway.app:create_app", gw_port, factory=True), env, gw_port))

        async def measure() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, port in (("bare", bare_port), ("gateway", gw_port)):
                await closed_loop(port, 2.0, concurrency)  # warm-up
                out[name] = {"max_throughput": await closed_loop(port, duration_s, concurrency),
                             "at_rate": await open_loop(port, rate, duration_s)}
            return out

        results = asyncio.run(measure())
    finally:
        for p in reversed(procs):
            _stop(p)
    bare_rps = results["bare"]["max_throughput"]["rps"]
    gw_rps = results["gateway"]["max_throughput"]["rps"]
    return {"bare": results["bare"], "gateway": results["gateway"],
            "throughput_ratio_vs_bare": round(gw_rps / bare_rps, 3) if bare_rps else None,
            "p99_ms_at_200rps": results["gateway"]["at_rate"]["p99_ms"] if rate == 200 else None,
            "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--fsync", default="always", help="Redis appendfsync (diagnosis only)")
    parser.add_argument("--airflow-url", default=None, help="'' = no trigger after the answer")
    args = parser.parse_args(argv)
    ingest = run_ingest(args.duration, args.concurrency, args.rate, args.fsync, args.airflow_url)
    for name in ("bare", "gateway"):
        m, r = ingest[name]["max_throughput"], ingest[name]["at_rate"]
        print(f"{name:>8}: {m['rps']:>8} req/s (p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms, "
              f"{m['errors']} errors) | at {r['rate']:.0f} req/s: p50 {r['p50_ms']} ms, "
              f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms")
    print(json.dumps({"bench": "webhooks", "throughput_ratio_vs_bare": ingest["throughput_ratio_vs_bare"],
                      "p99_ms_at_200rps": ingest["p99_ms_at_200rps"], "e2e_p50_s": None,
                      "noop_dag_e2e_p50_s": None, "ingest": ingest}))


if __name__ == "__main__":
    main()
