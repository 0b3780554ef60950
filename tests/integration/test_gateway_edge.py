"""The gateway's edge, as served in production (`python -m webhook_gateway` in its own process, the
documented defaults): slow or half requests are closed in the documented time, oversized heads are
431, past the connection cap comes a 503; the real Redis, hub and Advoware sandbox behind it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from include.settings import GatewaySettings
from sandbox import advoware as sbx
from sandbox.runner import free_port
from tests.integration.test_gateway_proxy import audit_rows
from tests.party_helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
WRITE, READ = "edge-write-token-0123", "edge-read-token-4567"
DEFAULTS = GatewaySettings(_env_file=None)
HEAD_S, BODY_S = DEFAULTS.header_timeout_s, DEFAULTS.body_timeout_s
MARGIN_S = 15.0  # a loaded 2-core machine: the sweep runs twice a second, the answer may be late


@dataclass
class Served:
    url: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, redis_db: int, hub_dsn: str, _advoware_server: str
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("edge-gateway")  # no .env of the checkout leaks in
    port = free_port()
    info = psycopg.conninfo.conninfo_to_dict(hub_dsn)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "INFO",
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "POSTGRES_HOST": info.get("host", "127.0.0.1"),
        "POSTGRES_PORT": str(info.get("port", 5432)),
        "POSTGRES_DB": info["dbname"],
        "POSTGRES_USER": info.get("user", "postgres"),
        "POSTGRES_PASSWORD": "",
        "ADVOWARE_BASE_URL": _advoware_server,
        "ADVOWARE_AUTH_URL": "",
        "ADVOWARE_CONFIGURATOR_URL": "",
        "ADVOWARE_USERNAME": sbx.USERNAME,
        "ADVOWARE_PASSWORD": sbx.PASSWORD,
        "ADVOWARE_APP_ID": sbx.APP_ID,
        "ADVOWARE_API_KEY": sbx.API_KEY,
        "ADVOWARE_KANZLEI": sbx.KANZLEI,
        "ADVOWARE_DATABASE": sbx.DATABASE,
        "ESPOCRM_WEBHOOK_SECRET": "edge-secret",
        "AIRFLOW_API_URL": f"http://127.0.0.1:{free_port()}",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_API_TOKEN": WRITE,
        "GATEWAY_READ_TOKEN": READ,
    }
    for name in list(env):  # the documented defaults of the edge, whatever the caller's shell says
        if name.startswith("GATEWAY_") and name not in (
            "GATEWAY_HOST",
            "GATEWAY_PORT",
            "GATEWAY_API_TOKEN",
            "GATEWAY_READ_TOKEN",
        ):
            env.pop(name)
    log = workdir / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "webhook_gateway"], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    served = Served(f"http://127.0.0.1:{port}", port, log, proc)
    try:

        def healthy() -> bool:
            assert proc.poll() is None, served.log_text()
            try:
                return httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout_s=60)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Outcome:
    answer: bytes
    closed_after_s: float

    @property
    def status(self) -> int | None:
        return int(self.answer.split(b" ", 2)[1]) if self.answer.startswith(b"HTTP/1.1 ") else None

    def json(self) -> dict:
        return json.loads(self.answer.split(b"\r\n\r\n", 1)[1])


async def _until_closed(
    port: int, first: bytes, trickle: bytes = b"", every_s: float = 1.0, limit_s: float = 120.0
) -> Outcome:
    """Send `first`, then one byte of `trickle` every `every_s`; return what came back and when the
    gateway closed the connection (counted from the connect)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(first)

    async def dribble() -> None:
        for byte in trickle:
            await asyncio.sleep(every_s)
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                return

    sender = asyncio.create_task(dribble())
    answer = b""
    try:
        async with asyncio.timeout(limit_s):
            while chunk := await reader.read(65536):
                answer += chunk
    except ConnectionError:
        pass
    finally:
        sender.cancel()
        writer.close()
    return Outcome(answer, time.monotonic() - started)


def test_slow_and_half_requests_are_closed_in_the_documented_time(served: Served, hub: str) -> None:
    signed_headers = "Content-Type: application/json\r\nContent-Length: 400\r\n"

    async def all_at_once() -> list[Outcome]:
        return await asyncio.gather(
            _until_closed(served.port, b"", limit_s=HEAD_S + 60),  # connects, sends nothing
            _until_closed(served.port, b"GET /heal", limit_s=HEAD_S + 60),  # half a request line
            _until_closed(
                served.port,
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # slow headers
                trickle=b"a" * 200,
                limit_s=HEAD_S + 60,
            ),
            _until_closed(
                served.port,
                (
                    f"POST /api/advoware/Termine HTTP/1.1\r\nHost: x\r\n"  # slow body
                    f"Authorization: Bearer {WRITE}\r\nX-Request-ID: slow-body-1\r\n"
                    f"{signed_headers}\r\n"
                ).encode()
                + b'{"kuerzel": ',
                trickle=b" " * 200,
                limit_s=BODY_S + 60,
            ),
            _until_closed(
                served.port,
                (
                    f"POST /webhooks/vmh/beteiligte/update HTTP/1.1\r\nHost: x\r\n"  # stalled
                    f"{signed_headers}\r\n"
                ).encode()
                + b'[{"id": "a"',
                limit_s=BODY_S + 60,
            ),
        )

    silent, half_line, slow_head, slow_body, stalled_webhook = asyncio.run(all_at_once())
    assert silent.answer == b"" and HEAD_S - 1 <= silent.closed_after_s <= HEAD_S + MARGIN_S
    for head in (half_line, slow_head):
        assert head.status == 408 and head.json()["error"] == "request_timeout", head.answer
        assert HEAD_S - 1 <= head.closed_after_s <= HEAD_S + MARGIN_S
    assert slow_body.status == 408 and "body not complete" in slow_body.json()["message"], slow_body.answer
    assert BODY_S - 1 <= slow_body.closed_after_s <= BODY_S + MARGIN_S
    # an unsigned webhook is refused before its body is read; the stalled rest does not keep it open
    assert stalled_webhook.status == 401, stalled_webhook.answer
    assert stalled_webhook.closed_after_s <= BODY_S + MARGIN_S
    assert slow_body.json()["request_id"] == "slow-body-1"
    rows = wait_for(lambda: audit_rows(hub))  # the abandoned write is audited as what it was
    assert [(r["method"], r["status"], r["detail"], r["request_id"]) for r in rows] == [
        ("POST", 408, "body_timeout", "slow-body-1")
    ]
    assert "Traceback" not in served.log_text()
    assert httpx.get(f"{served.url}/healthz").status_code == 200


def _send_head(port: int, head: bytes) -> Outcome:
    async def go() -> Outcome:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        try:
            for i in range(0, len(head), 65536):
                writer.write(head[i : i + 65536])
                await writer.drain()
        except ConnectionError:
            pass  # the gateway stopped reading once the limit was passed: expected
        answer = b""
        try:
            async with asyncio.timeout(30):
                while chunk := await reader.read(65536):
                    answer += chunk
        except ConnectionError:
            pass
        writer.close()
        return Outcome(answer, time.monotonic() - started)

    return asyncio.run(go())


def test_oversized_heads_are_431(served: Served) -> None:
    big_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * 1024 * 1024) + b"\r\n\r\n"
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(10_000)) + b"\r\n"
    just_over = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n"
    long_url = b"GET /healthz?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    for head in (big_header, many, just_over, long_url):
        outcome = _send_head(served.port, head)
        assert outcome.status == 431, outcome.answer[:300]
        assert outcome.json()["error"] == "headers_too_large"
    fits = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fits: " + b"a" * 12_000 + b"\r\nConnection: close\r\n\r\n"
    assert _send_head(served.port, fits).status == 200
    assert "Traceback" not in served.log_text()


def test_past_the_connection_cap_comes_a_503(served: Served) -> None:
    cap = DEFAULTS.max_connections

    async def go() -> tuple[list[Outcome], int]:
        held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(cap)]
        try:
            extra = await _until_closed(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", limit_s=30)
            # the held connections are still served (they are within the cap)
            reader, writer = held[0]
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            first = await reader.read(65536)
            return [extra], int(first.split(b" ", 2)[1])
        finally:
            for _, writer in held:
                writer.close()

    [extra], held_status = asyncio.run(go())
    assert extra.status == 503 and extra.json()["error"] == "too_many_connections"
    assert b"retry-after: 1" in extra.answer.lower()
    assert held_status == 200
    assert wait_for(lambda: httpx.get(f"{served.url}/healthz").status_code == 200)


def test_a_malformed_body_is_400_and_the_write_is_audited(served: Served, hub: str) -> None:
    head = (
        f"POST /api/advoware/Termine HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITE}\r\n"
        "X-Request-ID: bad-chunk-1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    outcome = _send_head(served.port, head.encode() + b'5\r\n{"a":\r\nZZ-not-a-chunk-size\r\n')
    assert outcome.status == 400 and outcome.json()["error"] == "bad_request", outcome.answer
    rows = wait_for(lambda: audit_rows(hub))
    assert [(r["status"], r["detail"], r["request_id"]) for r in rows] == [(400, "bad_request", "bad-chunk-1")]
    assert "Traceback" not in served.log_text()
