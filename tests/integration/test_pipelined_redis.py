"""The gateway's pipelined Redis connection (include/queue/pipelined_redis.py) against real redis-servers:
every caller gets its own reply however many are in flight, a lost or silent server fails the commands
in flight and the next command reconnects, scripts survive a flush, AUTH and SELECT from the URL."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.queue.pipelined_redis import PipelinedRedis, Script
from sandbox.runner import free_port
from tests.redis_helpers import OwnRedis

_ECHO = Script("return {KEYS[1], ARGV[1]}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.binary(max_size=300), min_size=1, max_size=200))
def test_concurrent_callers_each_get_their_own_reply(redis_url: str, values: list[bytes]) -> None:
    async def run() -> list[object]:
        client = PipelinedRedis(redis_url)
        try:
            # all in flight at once: SET then GET per value, interleaved across callers
            async def one(i: int, value: bytes) -> object:
                await client.execute("SET", f"pipe:{i}", value)
                return await client.execute("GET", f"pipe:{i}")

            return await asyncio.gather(*(one(i, v) for i, v in enumerate(values)))
        finally:
            await client.close()

    assert asyncio.run(run()) == values


def test_a_command_error_is_raised_to_its_caller_only(redis_url: str) -> None:
    async def run() -> tuple[object, object, object]:
        client = PipelinedRedis(redis_url)
        try:
            replies = await asyncio.gather(
                client.execute("SET", "pipe:e", "1"),
                client.execute("HGET", "pipe:e", "f"),
                client.execute("GET", "pipe:e"),
                return_exceptions=True,
            )
            return replies[0], replies[1], replies[2]
        finally:
            await client.close()

    ok, wrong_type, after = asyncio.run(run())
    assert ok == b"OK" and isinstance(wrong_type, redis.ResponseError) and "WRONGTYPE" in str(wrong_type)
    assert after == b"1"


def test_a_cancelled_caller_does_not_shift_the_replies_of_the_others(redis_url: str) -> None:
    async def run() -> list[object]:
        client = PipelinedRedis(redis_url)
        try:
            await client.execute("SET", "pipe:c1", "one")
            await client.execute("SET", "pipe:c2", "two")
            slow = asyncio.ensure_future(client.execute("BLPOP", "pipe:nothing", "0.3"))
            await asyncio.sleep(0)  # written, then abandoned
            slow.cancel()
            return [await client.execute("GET", "pipe:c1"), await client.execute("GET", "pipe:c2")]
        finally:
            await client.close()

    assert asyncio.run(run()) == [b"one", b"two"]


def test_evalsha_loads_the_script_again_after_a_flush(redis_url: str) -> None:
    async def run() -> tuple[object, object]:
        client = PipelinedRedis(redis_url)
        try:
            first = await client.evalsha(_ECHO, ["k"], ["v"])
            await client.execute("SCRIPT", "FLUSH")
            return first, await client.evalsha(_ECHO, ["k2"], ["v2"])
        finally:
            await client.close()

    assert asyncio.run(run()) == ([b"k", b"v"], [b"k2", b"v2"])


def test_a_lost_server_fails_the_commands_in_flight_and_the_next_one_reconnects(own_redis: OwnRedis) -> None:
    async def run() -> tuple[list[object], object, object]:
        client = PipelinedRedis(own_redis.url, reply_timeout_s=5)
        try:
            await client.execute("SET", "before", "1")
            in_flight = [asyncio.ensure_future(client.execute("BLPOP", "never", "0")) for _ in range(3)]
            await asyncio.sleep(0.1)
            own_redis.stop(signal.SIGKILL)
            failed = await asyncio.gather(*in_flight, return_exceptions=True)
            with pytest.raises(redis.ConnectionError):
                await client.execute("PING")  # down: a quick, clear error
            own_redis.start()  # AOF: the key written before is back
            return failed, await client.execute("GET", "before"), await client.execute("PING")
        finally:
            await client.close()

    failed, before, pong = asyncio.run(run())
    assert all(isinstance(f, redis.ConnectionError) for f in failed), failed
    assert before == b"1" and pong == b"PONG"


def test_a_silent_server_times_out_and_the_connection_is_replaced(own_redis: OwnRedis) -> None:
    async def run() -> tuple[object, float, object]:
        client = PipelinedRedis(own_redis.url, reply_timeout_s=0.5)
        try:
            await client.execute("PING")
            assert own_redis.proc is not None
            os.kill(own_redis.proc.pid, signal.SIGSTOP)  # alive, accepts nothing, answers nothing
            started = time.monotonic()
            try:
                outcome: object = await client.execute("SET", "during", "1")
            except redis.RedisError as exc:
                outcome = exc
            waited = time.monotonic() - started
            os.kill(own_redis.proc.pid, signal.SIGCONT)
            return outcome, waited, await client.execute("PING")
        finally:
            await client.close()

    outcome, waited, pong = asyncio.run(run())
    assert isinstance(outcome, redis.TimeoutError), outcome
    assert 0.5 <= waited < 3  # bounded by the reply timeout, not hanging
    assert pong == b"PONG"


def test_password_and_database_come_from_the_url(tmp_path: Path) -> None:
    server = OwnRedis(tmp_path, password="s3cret")
    server.start()
    try:

        async def run(url: str) -> object:
            client = PipelinedRedis(url)
            try:
                return await client.execute("SET", "in-db-3", "yes")
            finally:
                await client.close()

        assert asyncio.run(run(f"redis://:s3cret@127.0.0.1:{server.port}/3")) == b"OK"
        assert server.client(db=3).get("in-db-3") == b"yes" and server.client(db=0).get("in-db-3") is None
        with pytest.raises(redis.AuthenticationError):
            asyncio.run(run(f"redis://:wrong@127.0.0.1:{server.port}/0"))
    finally:
        server.stop(signal.SIGKILL)


def test_a_new_event_loop_gets_a_new_connection(redis_url: str) -> None:
    client = PipelinedRedis(redis_url)
    assert asyncio.run(client.execute("PING")) == b"PONG"
    assert asyncio.run(client.execute("PING")) == b"PONG"  # the first loop and its transport are gone
    asyncio.run(client.close())


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the certificate is its own CA)."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_verifies_the_server_against_the_ca_from_the_url(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tls_port = free_port()
    server = OwnRedis(
        tmp_path,
        "--tls-port",
        str(tls_port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
    )
    server.start()  # plain port for the readiness check, TLS port for the client under test
    try:

        async def ping(url: str) -> object:
            client = PipelinedRedis(url)
            try:
                return await client.execute("PING")
            finally:
                await client.close()

        assert asyncio.run(ping(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}")) == b"PONG"
        with pytest.raises(redis.ConnectionError):  # an unknown CA is refused, not silently trusted
            asyncio.run(ping(f"rediss://127.0.0.1:{tls_port}/0"))
    finally:
        server.stop(signal.SIGKILL)
