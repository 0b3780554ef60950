"""The gateway's Advoware proxy, served by uvicorn in front of the Advoware sandbox, with the real
Redis (token cache) and the hub (write audit)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from include.settings import GatewaySettings, PostgresSettings, Settings
from sandbox import advoware as sbx
from sandbox.runner import ServerThread, free_port
from tests.advoware_helpers import sandbox_settings as advoware_settings
from tests.gateway_helpers import gateway_logs
from tests.party_helpers import wait_for
from webhook_gateway.app import create_app
from webhook_gateway.proxy import check_path

WRITE = "proxy-write-token-0123"
READ = "proxy-read-token-4567"
TERMIN = {
    "kuerzel": "AB",
    "text": "Besprechung Mandant",
    "datum": "2026-03-02T10:00:00",
    "datumBis": "2026-03-02T11:00:00",
    "ort": "Raum 1",
}


def hub_settings(dsn: str) -> PostgresSettings:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return PostgresSettings(
        host=info.get("host", "127.0.0.1"),
        port=int(info.get("port", 5432)),
        db=info["dbname"],
        user=info.get("user", "postgres"),
        password="",
    )


Gateway = Callable[..., str]


@pytest.fixture
def gateway(advoware_url: str, redis_url: str, hub: str) -> Iterator[Gateway]:
    """Start a gateway (uvicorn thread) with overrides: advoware={...}, gateway={...}."""
    servers: list[ServerThread] = []

    def start(advoware: dict[str, Any] | None = None, gateway: dict[str, Any] | None = None) -> str:
        gw = dict(api_token=WRITE, read_token=READ, proxy_max_body_bytes=1024)
        gw.update(gateway or {})
        settings = Settings(
            redis_url=redis_url,
            postgres=hub_settings(hub),
            advoware=advoware_settings(advoware_url, **(advoware or {})),
            gateway=GatewaySettings(**gw),
        )
        server = ServerThread(create_app(settings)).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sandbox_stats(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/_sandbox/stats").json()


def audit_rows(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT * FROM write_audit ORDER BY id").fetchall()


def raw_get(base: str, raw_path: str, token: str = WRITE) -> tuple[int, dict[str, Any]]:
    """Send the path byte for byte (httpx would normalise dot segments)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", raw_path, headers=auth(token))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


# -- authentication -------------------------------------------------------------------------------
def test_no_token_401_wrong_token_403(gateway: Gateway, advoware_url: str) -> None:
    gw = gateway()
    r = httpx.get(f"{gw}/api/advoware/Mitarbeiter")
    assert r.status_code == 401 and r.json()["error"] == "missing_token"
    assert r.json()["message"] == "missing bearer token"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    r = httpx.get(f"{gw}/api/advoware/Mitarbeiter", headers=auth("nope"))
    assert r.status_code == 403 and "not accepted" in r.json()["message"]
    assert sandbox_stats(advoware_url)["total_requests"] == 0


def test_read_token_reads_but_may_not_write(gateway: Gateway, advoware_url: str, hub: str) -> None:
    httpx.post(f"{advoware_url}/_sandbox/seed", json={"termine": [{**TERMIN, "frNr": 5}]}).raise_for_status()
    gw = gateway()
    r = httpx.get(f"{gw}/api/advoware/Termine", params={"frnr": 5}, headers=auth(READ))
    assert r.status_code == 200 and r.json()[0]["frNr"] == 5
    r = httpx.put(f"{gw}/api/advoware/Termine", params={"frnr": 5}, json=TERMIN, headers=auth(READ))
    assert r.status_code == 403 and r.json()["error"] == "read_only_token"
    assert sandbox_stats(advoware_url)["total_writes"] == 0
    [row] = audit_rows(hub)
    assert (row["actor"], row["token_scope"], row["method"], row["target"], row["status"], row["detail"]) == (
        "proxy",
        "read",
        "PUT",
        "Termine",
        403,
        "read_only_token",
    )


# -- pass-through ---------------------------------------------------------------------------------
def test_appointment_round_trip_through_the_proxy(gateway: Gateway, advoware_url: str, hub: str) -> None:
    gw = gateway()
    h = auth(WRITE)
    r = httpx.post(f"{gw}/api/advoware/Termine", json=TERMIN, headers={**h, "X-Request-ID": "create-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "create-1"
    created = r.json()
    frnr = created["frNr"]
    r = httpx.get(f"{gw}/api/advoware/Termine", params={"frnr": frnr}, headers=h)
    assert r.status_code == 200 and r.json() == [created]
    r = httpx.put(f"{gw}/api/advoware/Termine", params={"frnr": frnr}, json={**TERMIN, "text": "Verlegt"}, headers=h)
    assert r.status_code == 200 and r.json()["text"] == "Verlegt"
    listed = httpx.get(
        f"{gw}/api/advoware/Termine",
        headers=h,
        params={"kuerzel": "AB", "from": "2026-03-01", "to": "2026-03-03"},
    ).json()
    assert [t["text"] for t in listed] == ["Verlegt"]
    r = httpx.delete(f"{gw}/api/advoware/Termine", params={"frnr": frnr}, headers=h)
    assert r.status_code == 200
    assert httpx.get(f"{gw}/api/advoware/Termine", params={"frnr": frnr}, headers=h).json() == []
    assert sandbox_stats(advoware_url)["writes"] == {
        "Termine.create": 1,
        "Termine.update": 1,
        "Termine.delete": 1,
    }

    rows = audit_rows(hub)
    assert [(r["method"], r["target"], r["status"], r["token_scope"]) for r in rows] == [
        ("POST", "Termine", 200, "write"),
        ("PUT", "Termine", 200, "write"),
        ("DELETE", "Termine", 200, "write"),
    ]
    assert rows[0]["request_id"] == "create-1" and all(r["request_id"] for r in rows)
    assert not [r for r in rows if "Besprechung" in json.dumps(r, default=str)]  # no body in the audit


def test_advoware_status_body_and_retry_after_are_passed_on(gateway: Gateway, advoware_url: str) -> None:
    gw = gateway()
    h = auth(WRITE)
    r = httpx.get(f"{gw}/api/advoware/Beteiligte/999", headers=h)
    direct_404 = r.json()
    assert r.status_code == 404 and direct_404["error"] == "not_found"
    party = httpx.post(f"{gw}/api/advoware/Beteiligte", json={"name": "Muster GmbH"}, headers=h).json()
    bet = party["betNr"]
    assert (
        httpx.put(
            f"{gw}/api/advoware/Beteiligte/{bet}", json={"name": "A", "rowId": party["rowId"]}, headers=h
        ).status_code
        == 200
    )
    r = httpx.put(f"{gw}/api/advoware/Beteiligte/{bet}", json={"name": "B", "rowId": party["rowId"]}, headers=h)
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = httpx.delete(f"{gw}/api/advoware/Beteiligte/{bet}/Kommunikationen/1", headers=h)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"  # Advoware's 403, unchanged
    httpx.post(
        f"{advoware_url}/_sandbox/faults",
        json={"faults": [{"match": "Mitarbeiter.list", "kind": "status", "status": 503, "retry_after": 7, "count": 1}]},
    )
    r = httpx.get(f"{gw}/api/advoware/Mitarbeiter", headers=h)
    assert r.status_code == 503 and r.headers["retry-after"] == "7"
    assert r.json()["error"] == "injected_fault"
    assert sandbox_stats(advoware_url)["requests"]["Mitarbeiter.list"] == 1  # the proxy does not retry


# -- path checks ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/api/advoware/Termine/../../_sandbox/stats", "path traversal"),
        ("/api/advoware/Termine/%2e%2e/%2E%2E/_sandbox/stats", "path traversal"),
        ("/api/advoware/Termine%2F..%2F_sandbox", "encoded slash"),
        ("/api/advoware/Termine%5c..", "encoded slash"),
        ("/api/advoware/%252e%252e/Termine", "double-encoded"),
        ("/api/advoware/http://evil.example/Termine", "absolute URL"),
        ("/api/advoware//evil.example/Termine", "absolute URL"),
        ("/api/advoware/evil.example:8080/Termine", "host"),
        ("/api/advoware/user@evil/Termine", "host"),
        ("/api/advoware/evil.example/Termine", "host"),
    ],
)
def test_bad_paths_are_400(gateway: Gateway, advoware_url: str, raw: str, reason: str) -> None:
    gw = gateway()
    status, body = raw_get(gw, raw)
    assert status == 400, body
    assert body["error"] == "bad_path" and reason in body["message"]
    assert sandbox_stats(advoware_url)["total_requests"] == 0


def test_check_path_accepts_plain_resources() -> None:
    assert check_path("Beteiligte/12/Kommunikationen/3") == "Beteiligte/12/Kommunikationen/3"
    assert check_path("Termine/") == "Termine"


def test_allow_list(gateway: Gateway, advoware_url: str) -> None:
    gw = gateway()
    r = httpx.get(f"{gw}/api/advoware/Akten/1", headers=auth(WRITE))
    assert r.status_code == 403 and r.json()["error"] == "path_not_allowed"
    narrow = gateway(gateway={"proxy_allow": "Termine"})
    assert httpx.get(f"{narrow}/api/advoware/Mitarbeiter", headers=auth(READ)).status_code == 403
    assert httpx.get(f"{narrow}/api/advoware/Termine", params={"frnr": 1}, headers=auth(READ)).status_code == 200
    assert sandbox_stats(advoware_url)["requests"].get("Mitarbeiter.list") is None


# -- limits and failures --------------------------------------------------------------------------
def test_body_over_the_limit_is_413(gateway: Gateway, advoware_url: str, hub: str) -> None:
    gw = gateway()
    big = {**TERMIN, "notiz": "x" * 2000}
    r = httpx.post(f"{gw}/api/advoware/Termine", json=big, headers=auth(WRITE))
    assert r.status_code == 413 and r.json()["error"] == "body_too_large" and r.json()["limit"] == 1024

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield json.dumps(big).encode()

    r = httpx.post(
        f"{gw}/api/advoware/Termine",
        content=chunks(),
        headers={**auth(WRITE), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    r = httpx.post(f"{gw}/api/advoware/Termine", content=b"{not json", headers=auth(WRITE))
    assert r.status_code == 400 and r.json()["error"] == "bad_body"
    assert sandbox_stats(advoware_url)["total_requests"] == 0
    assert [row["status"] for row in audit_rows(hub)] == [413, 413, 400]


def test_advoware_timeout_is_504(gateway: Gateway, advoware_url: str) -> None:
    gw = gateway(advoware={"timeout_s": 0.5})
    httpx.post(
        f"{advoware_url}/_sandbox/faults",
        json={"faults": [{"match": "Mitarbeiter.list", "kind": "timeout", "delay_s": 3, "count": 1}]},
    )
    r = httpx.get(f"{gw}/api/advoware/Mitarbeiter", headers=auth(READ), timeout=10)
    assert r.status_code == 504 and r.json()["error"] == "advoware_timeout"


def test_unreachable_advoware_is_502(gateway: Gateway) -> None:
    gw = gateway(advoware={"base_url": f"http://127.0.0.1:{free_port()}"})
    r = httpx.get(f"{gw}/api/advoware/Mitarbeiter", headers=auth(READ), timeout=10)
    assert r.status_code == 502 and r.json()["error"] == "advoware_unreachable"
    assert "unreachable" in r.json()["message"]


def test_write_protection_is_403_and_nothing_is_sent(gateway: Gateway, advoware_url: str, hub: str) -> None:
    gw = gateway(advoware={"write_protection": True})
    h = auth(WRITE)
    for method in ("POST", "PUT", "DELETE"):
        r = httpx.request(method, f"{gw}/api/advoware/Termine", params={"frnr": 1}, json=TERMIN, headers=h)
        assert r.status_code == 403 and r.json()["error"] == "write_protected"
    assert httpx.get(f"{gw}/api/advoware/Mitarbeiter", headers=h).status_code == 200
    s = sandbox_stats(advoware_url)
    assert s["total_writes"] == 0 and set(s["requests"]) == {"Token", "Mitarbeiter.list"}
    assert [(r["method"], r["status"], r["detail"]) for r in audit_rows(hub)] == [
        ("POST", 403, "write_protected"),
        ("PUT", 403, "write_protected"),
        ("DELETE", 403, "write_protected"),
    ]


# -- logs -----------------------------------------------------------------------------------------
def test_request_id_logged_and_no_secret_in_any_log_line(
    gateway: Gateway, advoware_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = gateway()
    r = httpx.post(f"{gw}/api/advoware/Termine", json=TERMIN, headers={**auth(WRITE), "X-Request-ID": "rid-42"})
    assert r.status_code == 200
    httpx.post(f"{advoware_url}/_sandbox/revoke_tokens")
    assert httpx.get(f"{gw}/api/advoware/Mitarbeiter", headers=auth(READ)).status_code == 200  # renewed
    generated = httpx.get(f"{gw}/api/advoware/Mitarbeiter", headers=auth(READ)).headers["x-request-id"]
    assert len(generated) == 32
    import redis

    tokens = [
        json.loads(v)["token"]
        for k in redis.Redis.from_url(redis_url).keys("advoware:token:*")
        if not k.endswith(b":lock") and (v := redis.Redis.from_url(redis_url).get(k))
    ]
    assert tokens
    lines = [rec.getMessage() for rec in caplog.records]
    assert any("rid=rid-42" in line and "/api/advoware/Termine" in line for line in lines)
    for secret in (WRITE, READ, sbx.PASSWORD, sbx.API_KEY, *tokens):
        assert not [line for line in lines if secret in line]


# -- hostile bodies and paths ---------------------------------------------------------------------
DEEP = b"[" * 100_000


def test_deeply_nested_json_is_400_audited_and_logs_no_traceback(gateway: Gateway, advoware_url: str, hub: str) -> None:
    gw = gateway(gateway={"proxy_max_body_bytes": 1024 * 1024})
    with gateway_logs() as logs:
        post = httpx.post(f"{gw}/api/advoware/Termine", content=DEEP, headers=auth(WRITE))
        get = httpx.request("GET", f"{gw}/api/advoware/Mitarbeiter", content=DEEP, headers=auth(READ))
        depth_33 = b"[" * 33 + b"]" * 33
        just_over = httpx.post(f"{gw}/api/advoware/Termine", content=depth_33, headers=auth(WRITE))
    for r in (post, get, just_over):
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "bad_body" and "nested deeper than 32" in r.json()["message"]
    assert logs.errors() == []
    assert [(row["method"], row["status"], row["detail"]) for row in audit_rows(hub)] == [
        ("POST", 400, "bad_body"),
        ("POST", 400, "bad_body"),
    ]
    assert sandbox_stats(advoware_url)["total_requests"] == 0


def test_a_refused_path_segment_is_not_echoed_at_length(gateway: Gateway) -> None:
    gw = gateway()
    r = httpx.get(f"{gw}/api/advoware/{'A' * 60_000}", headers=auth(READ))
    assert r.status_code in (403, 414)
    assert len(r.content) < 1000


def test_long_paths_and_queries_are_414_and_never_forwarded(gateway: Gateway, advoware_url: str) -> None:
    gw = gateway()
    long_path = httpx.get(f"{gw}/api/advoware/Termine/{'1' * 16_000}", headers=auth(READ))
    assert long_path.status_code == 414 and long_path.json()["error"] == "uri_too_long"
    long_query = httpx.get(f"{gw}/api/advoware/Mitarbeiter", params={"q": "x" * 5000}, headers=auth(READ))
    assert long_query.status_code == 414 and long_query.json()["error"] == "uri_too_long"
    assert sandbox_stats(advoware_url)["total_requests"] == 0


def test_method_override_is_refused_not_forwarded(gateway: Gateway, advoware_url: str, hub: str) -> None:
    gw = gateway()
    r = httpx.get(f"{gw}/api/advoware/Mitarbeiter", params={"_method": "DELETE"}, headers=auth(READ))
    assert r.status_code == 400 and r.json()["error"] == "method_override"
    r = httpx.get(f"{gw}/api/advoware/Mitarbeiter", headers={**auth(READ), "X-HTTP-Method-Override": "DELETE"})
    assert r.status_code == 400 and r.json()["error"] == "method_override"
    assert sandbox_stats(advoware_url)["total_requests"] == 0


def test_a_non_ascii_request_id_is_replaced(gateway: Gateway) -> None:
    gw = gateway()
    r = httpx.get(f"{gw}/healthz", headers=[("X-Request-ID", "r\u00e9q-1".encode("latin-1"))])
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert rid != "r\u00e9q-1" and rid.isascii() and len(rid) == 32


def test_a_client_gone_mid_upload_leaves_one_audit_row_and_no_traceback(
    gateway: Gateway, advoware_url: str, hub: str
) -> None:
    gw = gateway()
    host, port = gw.removeprefix("http://").split(":")
    with gateway_logs() as logs:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST /api/advoware/Termine HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITE}\r\n"
                "Content-Type: application/json\r\nContent-Length: 900\r\nX-Request-ID: gone-1\r\n\r\n"
                '{"kuerzel": "AB", '.encode()
            )
        rows = wait_for(lambda: audit_rows(hub))
    assert [(r["method"], r["target"], r["status"], r["detail"], r["request_id"]) for r in rows] == [
        ("POST", "Termine", 499, "client_disconnected", "gone-1")
    ]
    assert logs.errors() == []
    assert sandbox_stats(advoware_url)["total_requests"] == 0


@pytest.mark.parametrize("mode", ["gzip", "deflate"])
def test_a_compressing_advoware_reaches_the_client_as_plain_json(
    gateway: Gateway, advoware_url: str, mode: str
) -> None:
    gw = gateway()
    plain = httpx.post(f"{gw}/api/advoware/Termine", json=TERMIN, headers=auth(WRITE))
    assert plain.status_code == 200
    httpx.post(f"{advoware_url}/_sandbox/config", json={"compress": mode}).raise_for_status()
    with httpx.Client(headers={"Accept-Encoding": "identity"}) as http:  # the client asks for plain JSON
        listed = http.get(f"{gw}/api/advoware/Termine", params={"frnr": plain.json()["frNr"]}, headers=auth(READ))
        created = http.post(f"{gw}/api/advoware/Termine", json={**TERMIN, "text": "Zwei"}, headers=auth(WRITE))
    for r in (listed, created):
        assert r.status_code == 200 and "content-encoding" not in r.headers
        assert r.headers["content-type"].startswith("application/json")
    assert listed.json() == [plain.json()]
    assert created.json()["text"] == "Zwei"
    assert sandbox_stats(advoware_url)["requests"]["Termine.get"] == 1
