"""Bench: the gateway's Advoware proxy against direct calls to the Advoware sandbox.

One run, one load generator (async, N concurrent, closed loop), the sandbox at 30 ms latency, the
token cached. The two sides alternate in short slices (ABBA) until each has had `--seconds`, so
load from other work on a shared machine falls on both alike.
The generator uses aiohttp by default: httpx.AsyncClient costs ~2.4 ms CPU per request
in its connection pool (measured here; aiohttp ~0.25 ms), so on a small machine an httpx generator
would be the bottleneck of both sides and hide the proxy's cost (`--client httpx` to compare).
CPU per request of the gateway and sandbox processes (from /proc) is reported too: unlike
latency it stays meaningful when other work shares the machine. The sandbox and the gateway
(`python -m webhook_gateway`, as in production) run as subprocesses on free ports.
Prints figures and, last, one JSON line:
{"bench": "proxy", "throughput_ratio", "added_p50_ms", "added_p99_ms", ...}.
Goals: throughput_ratio >= 0.7 and added_p50_ms < 5.

    .venv/bin/python bench/proxy.py [--seconds 20] [--concurrency 32] [--latency-ms 30]
                                    [--client aiohttp|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._servers import wait_healthy  # noqa: E402
from include.advoware.client import fetch_token  # noqa: E402
from include.settings import AdvowareSettings  # noqa: E402
from sandbox import advoware as sbx  # noqa: E402
from sandbox.runner import free_port  # noqa: E402

GATEWAY_TOKEN = "bench-gateway-token"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc): what one side cost, independent of other load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    """One side of the comparison: a URL, its own connection pool, and what was measured."""

    def __init__(self, name: str, url: str, headers: dict[str, str], concurrency: int, kind: str) -> None:
        self.name, self.url = name, url
        self.latencies: list[float] = []
        self.errors = 0
        self.elapsed = 0.0
        self.cpu: dict[str, float] = {}
        self._hx: httpx.AsyncClient | None
        self._aio: aiohttp.ClientSession | None
        if kind == "httpx":
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            self._hx = httpx.AsyncClient(limits=limits, timeout=30, headers=headers)
            self._aio = None
        else:
            import aiohttp

            self._hx = None
            self._aio = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=30),
            )

    async def get(self) -> bool:
        if self._hx is not None:
            return (await self._hx.get(self.url)).status_code == 200
        assert self._aio is not None
        async with self._aio.get(self.url) as r:
            await r.read()
            return r.status == 200

    async def close(self) -> None:
        if self._hx is not None:
            await self._hx.aclose()
        if self._aio is not None:
            await self._aio.close()

    async def run(self, seconds: float, concurrency: int, record: bool) -> None:
        """`concurrency` workers in a closed loop for `seconds`."""
        begun = time.perf_counter()
        stop_at = begun + seconds

        async def worker() -> None:
            while (started := time.perf_counter()) < stop_at:
                try:
                    ok = await self.get()
                except Exception:  # noqa: BLE001 - counted as an error
                    ok = False
                if record and time.perf_counter() <= stop_at:
                    if ok:
                        self.latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        self.errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if record:
            self.elapsed += time.perf_counter() - begun

    def result(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "requests": len(lat),
            "errors": self.errors,
            "seconds": round(self.elapsed, 2),
            "rps": len(lat) / self.elapsed if self.elapsed else 0.0,
            "p50_ms": statistics.median(lat) if lat else float("nan"),
            "p99_ms": percentile(lat, 0.99) if lat else float("nan"),
            "cpu_ms_per_request": {k: v * 1000 / len(lat) for k, v in self.cpu.items()} if lat else {},
        }


async def measure(
    targets: list[Target], seconds: float, slice_s: float, concurrency: int, warmup_s: float, marks: Any
) -> None:
    """Alternate the sides in short slices (ABBA order), so background load on a shared machine hits
    both alike; each side gets `seconds` of measured time in total."""
    try:
        for t in targets:
            await t.run(warmup_s, concurrency, record=False)  # connections open, token cached
        slices = max(1, round(seconds / slice_s))
        for k in range(slices):
            for t in targets if k % 2 == 0 else reversed(targets):
                before = marks()
                await t.run(seconds / slices, concurrency, record=True)
                after = marks()
                for key in after:
                    t.cpu[key] = t.cpu.get(key, 0.0) + after[key] - before[key]
    finally:
        for t in targets:
            await t.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per side")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--slice", type=float, default=2.0, help="seconds per alternating slice")
    ap.add_argument(
        "--client",
        choices=("aiohttp", "httpx"),
        default="aiohttp",
        help="load generator library (httpx costs ~10x the CPU per request; see docstring)",
    )
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = ap.parse_args()

    sandbox_port, gateway_port = free_port(), free_port()
    sandbox_url, gateway_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{gateway_port}"
    workdir = tempfile.mkdtemp(prefix="bench-proxy-")  # no .env of the checkout leaks in
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "INFO",
        "ADVOWARE_BASE_URL": sandbox_url,
        "ADVOWARE_AUTH_URL": "",
        "ADVOWARE_CONFIGURATOR_URL": "",
        "ADVOWARE_USERNAME": sbx.USERNAME,
        "ADVOWARE_PASSWORD": sbx.PASSWORD,
        "ADVOWARE_APP_ID": sbx.APP_ID,
        "ADVOWARE_API_KEY": sbx.API_KEY,
        "ADVOWARE_KANZLEI": sbx.KANZLEI,
        "ADVOWARE_DATABASE": sbx.DATABASE,
        "ADVOWARE_WRITE_PROTECTION": "false",
        "REDIS_URL": args.redis_url,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_API_TOKEN": GATEWAY_TOKEN,
        "GATEWAY_READ_TOKEN": "",
    }
    log = open(Path(workdir) / "processes.log", "wb")  # noqa: SIM115 - closed at the end
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "sandbox.advoware:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(sandbox_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    gateway = subprocess.Popen(
        [sys.executable, "-m", "webhook_gateway"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    token_key = None
    try:
        wait_healthy(sandbox_url, sandbox)
        wait_healthy(gateway_url, gateway)
        employees = [
            {
                "kuerzel": f"M{i:02d}",
                "name": f"Name{i}",
                "vorname": "V",
                "email": f"m{i}@example.org",
                "aktiv": True,
            }
            for i in range(10)
        ]
        httpx.post(f"{sandbox_url}/_sandbox/seed", json={"mitarbeiter": employees}).raise_for_status()
        httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": args.latency_ms}).raise_for_status()
        settings = AdvowareSettings(
            base_url=sandbox_url,
            auth_url="",
            username=sbx.USERNAME,
            password=sbx.PASSWORD,
            app_id=sbx.APP_ID,
            api_key=sbx.API_KEY,
            kanzlei=sbx.KANZLEI,
            database=sbx.DATABASE,
        )
        with httpx.Client(timeout=10) as http:
            token = fetch_token(http, settings, sandbox_url, 60.0).value
        from include.advoware.token_cache import cache_key

        token_key = cache_key(sandbox_url, sbx.KANZLEI, sbx.DATABASE, sbx.USERNAME, sbx.APP_ID)

        print(
            f"bench proxy: {args.concurrency} concurrent, {args.seconds:.0f} s per side, "
            f"sandbox latency {args.latency_ms:.0f} ms, gateway = `python -m webhook_gateway` (own process)"
        )

        def marks() -> dict[str, float]:
            return {
                "gateway": cpu_seconds(gateway.pid),
                "sandbox": cpu_seconds(sandbox.pid),
                "load_generator": time.process_time(),
            }

        async def both() -> tuple[Target, Target]:
            direct = Target(
                "direct",
                f"{sandbox_url}/api/v1/advonet/Mitarbeiter",
                {"Authorization": f"Bearer {token}"},
                args.concurrency,
                args.client,
            )
            proxied = Target(
                "proxy",
                f"{gateway_url}/api/advoware/Mitarbeiter",
                {"Authorization": f"Bearer {GATEWAY_TOKEN}"},
                args.concurrency,
                args.client,
            )
            await measure([direct, proxied], args.seconds, args.slice, args.concurrency, args.warmup, marks)
            return direct, proxied

        d, p = asyncio.run(both())
        direct, proxied = d.result(), p.result()
        stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    finally:
        for proc in (gateway, sandbox):
            proc.terminate()
        for proc in (gateway, sandbox):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        if token_key:  # the gateway's cached token: only this run's key, never anything else
            import redis

            redis.Redis.from_url(args.redis_url).delete(token_key)

    for name, r in (("direct", direct), ("proxy", proxied)):
        print(
            f"  {name:6s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
            f"({r['requests']} ok, {r['errors']} errors in {r['seconds']} s)"
        )
        cpu = r.get("cpu_ms_per_request", {})
        print("         CPU ms per request: " + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items()))
    ratio = proxied["rps"] / direct["rps"] if direct["rps"] else 0.0
    result = {
        "bench": "proxy",
        "throughput_ratio": round(ratio, 3),
        "added_p50_ms": round(proxied["p50_ms"] - direct["p50_ms"], 2),
        "added_p99_ms": round(proxied["p99_ms"] - direct["p99_ms"], 2),
        "direct_rps": round(direct["rps"], 1),
        "proxy_rps": round(proxied["rps"], 1),
        "direct_p50_ms": round(direct["p50_ms"], 2),
        "proxy_p50_ms": round(proxied["p50_ms"], 2),
        "direct_p99_ms": round(direct["p99_ms"], 2),
        "proxy_p99_ms": round(proxied["p99_ms"], 2),
        "errors": direct["errors"] + proxied["errors"],
        "token_requests": stats["requests"].get("Token", 0),
        "concurrency": args.concurrency,
        "seconds_per_side": args.seconds,
        "latency_ms": args.latency_ms,
        "gateway_cpu_ms_per_request": round(proxied.get("cpu_ms_per_request", {}).get("gateway", 0.0), 3),
        "sandbox_cpu_ms_per_request": round(direct.get("cpu_ms_per_request", {}).get("sandbox", 0.0), 3),
        "load_generator": args.client,
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "goals_met": ratio >= 0.7 and proxied["p50_ms"] - direct["p50_ms"] < 5,
    }
    print(
        f"  throughput ratio {ratio:.3f} (goal >= 0.7), added p50 {result['added_p50_ms']} ms (goal < 5), "
        f"added p99 {result['added_p99_ms']} ms; token requests to the sandbox: {result['token_requests']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
