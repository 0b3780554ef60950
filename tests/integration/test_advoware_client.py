"""The Advoware client against the sandbox and the real Redis: token sharing and renewal, retries,
no blind POST retry, write protection, typed errors, discovery, and no secret in any log line."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
import pytest

from include.advoware import (
    AdvowareAuthError,
    AdvowareClient,
    AdvowareConflict,
    AdvowareConnectionError,
    AdvowareNotFound,
    AdvowareTimeout,
    AdvowareUnavailable,
    WriteProtectedError,
)
from sandbox import advoware as sbx
from sandbox.runner import free_port
from tests.advoware_helpers import sandbox_settings as settings

TERMIN = {
    "kuerzel": "AB",
    "text": "Besprechung",
    "datum": "2026-03-02T10:00:00",
    "datumBis": "2026-03-02T11:00:00",
    "ort": "Raum 1",
}


def client(url: str, redis_url: str | None, **kw: Any) -> AdvowareClient:
    ckw = {k: kw.pop(k) for k in ("renew_before_s", "backoff_base_s") if k in kw}
    ckw.setdefault("backoff_base_s", 0.01)
    return AdvowareClient(settings(url, **kw), redis_url=redis_url, **ckw)


def stats(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/_sandbox/stats").json()


def admin(url: str, path: str, body: dict[str, Any]) -> None:
    httpx.post(f"{url}{path}", json=body).raise_for_status()


def faults(url: str, *specs: dict[str, Any]) -> None:
    admin(url, "/_sandbox/faults", {"faults": list(specs)})


def seed_employees(url: str) -> None:
    admin(
        url,
        "/_sandbox/seed",
        {"mitarbeiter": [{"kuerzel": "AB", "name": "A", "vorname": "B", "aktiv": True}]},
    )


# -- typed calls --------------------------------------------------------------------------------
def test_typed_calls_round_trip(advoware_url: str, redis_url: str) -> None:
    seed_employees(advoware_url)
    with client(advoware_url, redis_url) as c:
        assert [m["kuerzel"] for m in c.list_mitarbeiter()] == ["AB"]
        created = c.create_termin(TERMIN)
        frnr = created["frNr"]
        assert c.get_termin(frnr)["text"] == "Besprechung"
        assert [t["frNr"] for t in c.list_termine("AB", "2026-03-01", "2026-03-03")] == [frnr]
        assert c.update_termin(frnr, {**TERMIN, "text": "Verlegt"})["text"] == "Verlegt"
        c.delete_termin(frnr)
        assert c.get_termin(frnr) is None

        party = c.create_beteiligter({"name": "Muster GmbH", "rechtsform": "GmbH"})
        bet = party["betNr"]
        updated = c.update_beteiligter(bet, {"name": "Muster AG", "rowId": party["rowId"]})
        assert updated["name"] == "Muster AG" and updated["rowId"] != party["rowId"]
        with pytest.raises(AdvowareConflict, match="409"):
            c.update_beteiligter(bet, {"name": "Stale", "rowId": party["rowId"]})
        komm = c.create_kommunikation(bet, {"kommKz": 4, "tlf": "info@example.org"})
        assert c.update_kommunikation(bet, komm["id"], {"tlf": "neu@example.org"})["tlf"] == "neu@example.org"
        assert [k["tlf"] for k in c.list_kommunikationen(bet)] == ["neu@example.org"]
        with pytest.raises(AdvowareAuthError, match="403"):
            c.delete_kommunikation(bet, komm["id"])
        with pytest.raises(AdvowareNotFound, match="Beteiligte/999"):
            c.get_beteiligter(999)
    assert stats(advoware_url)["requests"]["Token"] == 1


# -- the shared token ---------------------------------------------------------------------------
def test_fifty_concurrent_cold_callers_cause_one_token_request(advoware_url: str, redis_url: str) -> None:
    seed_employees(advoware_url)
    # one client each, as if in 50 processes: only the Redis lock can keep them to one token request
    clients = [client(advoware_url, redis_url) for _ in range(50)]
    barrier = threading.Barrier(50)
    results: list[Any] = [None] * 50

    def call(i: int) -> None:
        barrier.wait()
        try:
            results[i] = clients[i].list_mitarbeiter()
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert all(isinstance(r, list) and r and r[0]["kuerzel"] == "AB" for r in results), results
        s = stats(advoware_url)
        assert s["requests"]["Token"] == 1
        assert s["requests"]["Mitarbeiter.list"] == 50  # and no call was refused with 401
        assert len({c.token_cache.peek() for c in clients}) == 1
    finally:
        for c in clients:
            c.close()


def test_token_renewed_shortly_before_expiry(advoware_url: str, redis_url: str) -> None:
    admin(advoware_url, "/_sandbox/config", {"token_ttl_s": 2})
    with client(advoware_url, redis_url, renew_before_s=0.5) as c, client(advoware_url, redis_url) as other:
        c.list_mitarbeiter()
        other.list_mitarbeiter()  # another process: reads the shared token, asks for none
        assert stats(advoware_url)["requests"]["Token"] == 1
        first = c.token_cache.peek()
        deadline = time.monotonic() + 5
        while c.token_cache.peek() is not None:  # due for renewal, not yet expired
            assert time.monotonic() < deadline
            time.sleep(0.05)
        c.list_mitarbeiter()
        s = stats(advoware_url)
        assert s["requests"]["Token"] == 2
        assert s["requests"]["Mitarbeiter.list"] == 3  # no 401 on the way: renewed before it expired
        assert c.token_cache.peek() not in (None, first)


def test_401_renews_the_token_once_and_retries(advoware_url: str, redis_url: str) -> None:
    with client(advoware_url, redis_url) as c:
        c.list_mitarbeiter()
        admin(advoware_url, "/_sandbox/revoke_tokens", {})
        assert c.list_mitarbeiter() == []
        created = c.create_termin(TERMIN)  # a write after revocation renews too (it was never applied)
        admin(advoware_url, "/_sandbox/revoke_tokens", {})
        c.delete_termin(created["frNr"])
    s = stats(advoware_url)
    assert s["requests"]["Token"] == 3
    assert s["requests"]["Mitarbeiter.list"] == 3  # 1 + (401, retry)
    assert s["writes"] == {"Termine.create": 1, "Termine.delete": 1}


def test_rejected_credentials_raise_auth_error_without_retry(advoware_url: str, redis_url: str) -> None:
    with (
        client(advoware_url, redis_url, password="wrong") as c,
        pytest.raises(AdvowareAuthError, match="rejected"),
    ):
        c.list_mitarbeiter()
    assert stats(advoware_url)["requests"]["Token"] == 1


# -- retries ------------------------------------------------------------------------------------
def test_503_with_retry_after_is_retried_after_the_given_delay(advoware_url: str, redis_url: str) -> None:
    seed_employees(advoware_url)
    faults(advoware_url, {"match": "Termine.list", "kind": "status", "status": 503, "retry_after": 1, "count": 2})
    with client(advoware_url, redis_url) as c:
        c.list_mitarbeiter()  # token first, so the timing below is the retries only
        started = time.monotonic()
        assert c.list_termine("AB", "2026-01-01", "2026-12-31") == []
        elapsed = time.monotonic() - started
    assert stats(advoware_url)["requests"]["Termine.list"] == 3
    assert elapsed >= 1.9  # twice Retry-After: 1 (the backoff alone would be ~0.01 s)


def test_503_and_other_5xx_give_up_after_max_retries(advoware_url: str, redis_url: str) -> None:
    faults(advoware_url, {"match": "Mitarbeiter.list", "kind": "status", "status": 500, "count": 10})
    with client(advoware_url, redis_url, max_retries=2) as c, pytest.raises(AdvowareUnavailable, match="500"):
        c.list_mitarbeiter()
    assert stats(advoware_url)["requests"]["Mitarbeiter.list"] == 3


def test_dropped_connections_and_timeouts_are_retried_for_reads(advoware_url: str, redis_url: str) -> None:
    seed_employees(advoware_url)
    faults(
        advoware_url,
        {"match": "Mitarbeiter.list", "kind": "drop", "count": 2},
        {"match": "Beteiligte.list", "kind": "timeout", "delay_s": 2, "count": 1},
    )
    with client(advoware_url, redis_url, timeout_s=0.5) as c:
        assert c.list_mitarbeiter()[0]["kuerzel"] == "AB"
        assert c.list_beteiligte() == []
    s = stats(advoware_url)
    assert s["requests"]["Mitarbeiter.list"] == 3
    assert s["requests"]["Beteiligte.list"] == 2


def test_put_is_retried_on_503(advoware_url: str, redis_url: str) -> None:
    with client(advoware_url, redis_url) as c:
        frnr = c.create_termin(TERMIN)["frNr"]
        faults(advoware_url, {"match": "Termine.update", "kind": "status", "status": 503, "count": 1})
        assert c.update_termin(frnr, {**TERMIN, "text": "X"})["text"] == "X"
    assert stats(advoware_url)["requests"]["Termine.update"] == 2


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503, "retry_after": 0},
        {"kind": "drop"},
        {"kind": "timeout", "delay_s": 2},
    ],
)
def test_a_post_is_never_retried(advoware_url: str, redis_url: str, fault: dict[str, Any]) -> None:
    faults(advoware_url, {"match": "Termine.create", "count": 1, **fault})
    with client(advoware_url, redis_url, timeout_s=0.5) as c:
        with pytest.raises(AdvowareUnavailable) as err:
            c.create_termin(TERMIN)
        assert err.value.method == "POST" and err.value.endpoint == "Termine"
        s = stats(advoware_url)
        assert s["requests"]["Termine.create"] == 1
        assert s["total_writes"] == 0
        c.create_termin(TERMIN, retry=True)  # the caller may decide otherwise
    assert stats(advoware_url)["writes"] == {"Termine.create": 1}


# -- write protection ---------------------------------------------------------------------------
def test_write_protection_sends_no_write_while_reads_work(advoware_url: str, redis_url: str) -> None:
    admin(
        advoware_url,
        "/_sandbox/seed",
        {"termine": [{**TERMIN, "frNr": 7}], "beteiligte": [{"betNr": 3, "name": "Muster GmbH"}]},
    )
    with client(advoware_url, redis_url, write_protection=True) as c:
        writes = [
            lambda: c.create_termin(TERMIN),
            lambda: c.update_termin(7, TERMIN),
            lambda: c.delete_termin(7),
            lambda: c.create_beteiligter({"name": "N"}),
            lambda: c.update_beteiligter(3, {"name": "N"}),
            lambda: c.delete_beteiligter(3),
            lambda: c.create_kommunikation(3, {"kommKz": 1, "tlf": "1"}),
            lambda: c.update_kommunikation(3, 1, {"tlf": "2"}),
            lambda: c.delete_kommunikation(3, 1),
            lambda: c.request("post", "Termine", json=TERMIN, retry=True),
        ]
        for write in writes:
            with pytest.raises(WriteProtectedError, match="write protection"):
                write()
        # not even a token request left the process for those writes
        assert stats(advoware_url)["total_requests"] == 0
        assert c.get_termin(7)["text"] == "Besprechung"
        assert c.get_beteiligter(3)["name"] == "Muster GmbH"
    s = stats(advoware_url)
    assert s["total_writes"] == 0
    assert set(s["requests"]) == {"Token", "Termine.get", "Beteiligte.get"}


# -- discovery and degraded Redis ---------------------------------------------------------------
def test_discovery_through_the_configurator(advoware_url: str, redis_url: str) -> None:
    seed_employees(advoware_url)
    closed = f"http://127.0.0.1:{free_port()}"  # the configured base must not be used
    with client(closed, redis_url, configurator_url=advoware_url) as c:
        assert c.list_mitarbeiter()[0]["kuerzel"] == "AB"
        assert c.endpoints.api_base == advoware_url
    assert stats(advoware_url)["requests"]["Configurator"] == 1


def test_unreachable_advoware_raises_connection_error(redis_url: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with (
        client(closed, redis_url, max_retries=1) as c,
        pytest.raises(AdvowareConnectionError, match="unreachable"),
    ):
        c.list_mitarbeiter()


def test_works_without_redis(advoware_url: str) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with client(advoware_url, dead_redis) as c:
        assert c.list_mitarbeiter() == []
        assert c.list_mitarbeiter() == []
    assert stats(advoware_url)["requests"]["Token"] == 1


def test_timeout_error_is_typed(advoware_url: str, redis_url: str) -> None:
    faults(advoware_url, {"match": "Mitarbeiter.list", "kind": "timeout", "delay_s": 2, "count": 5})
    with client(advoware_url, redis_url, timeout_s=0.3, max_retries=1) as c, pytest.raises(AdvowareTimeout):
        c.list_mitarbeiter()


# -- secrets ------------------------------------------------------------------------------------
def test_no_secret_in_any_log_line_or_error(
    advoware_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with client(advoware_url, redis_url) as c:
        c.list_mitarbeiter()
        token = c.token_cache.peek()
        admin(advoware_url, "/_sandbox/revoke_tokens", {})
        faults(
            advoware_url,
            {"match": "Mitarbeiter.list", "kind": "status", "status": 503, "count": 1},
            {"match": "Termine.create", "kind": "status", "status": 503, "count": 1},
        )
        c.list_mitarbeiter()
        new_token = c.token_cache.peek()
        try:
            c.create_termin(TERMIN)
        except AdvowareUnavailable as exc:
            errors.append(str(exc))
    with client(advoware_url, redis_url, password="wrong-" + sbx.PASSWORD) as bad:
        bad.token_cache.invalidate(new_token or "")
        try:
            bad.list_mitarbeiter()
        except AdvowareAuthError as exc:
            errors.append(str(exc))
    assert token and new_token and len(errors) == 2
    lines = [r.getMessage() for r in caplog.records] + errors
    assert any("retrying" in line for line in lines)  # the retry was logged ...
    for secret in (sbx.PASSWORD, sbx.API_KEY, token, new_token):
        assert not [line for line in lines if secret in line]  # ... without a secret
