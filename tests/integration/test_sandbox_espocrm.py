"""EspoCRM sandbox: REST API semantics and a webhook sender faithful to EspoCRM's rules.

Signatures are checked with an implementation of their own here (hmac/hashlib/base64), not with
the sandbox's code, and each webhook has its own secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from sandbox.runner import ServerThread

# one client for the helpers: building an httpx client per call costs more than the call
HTTP = httpx.Client(timeout=10)
KEY = {"X-Api-Key": "sandbox-espocrm-key"}
ENTITY = "CBeteiligte"


# -- a receiver the sandbox delivers to ---------------------------------------------------------
class Receiver:
    """Records every POST (path, headers, raw body); answers the statuses queued per path, else 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: dict[str, deque[int]] = defaultdict(deque)
        self.app = FastAPI()

        @self.app.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            body = await request.body()
            self.received.append({"name": name, "headers": dict(request.headers), "body": body})
            queue = self.statuses[name]
            return Response(status_code=queue.popleft() if queue else 200)

    def reset(self) -> None:
        self.received.clear()
        self.statuses.clear()

    def bodies(self, name: str) -> list[list[dict[str, Any]]]:
        return [json.loads(r["body"]) for r in self.received if r["name"] == name]


@pytest.fixture(scope="module")
def _receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with ServerThread(receiver.app) as server:
        yield receiver, server.url


@pytest.fixture
def receiver(_receiver: tuple[Receiver, str]) -> tuple[Receiver, str]:
    _receiver[0].reset()
    return _receiver


# -- helpers ------------------------------------------------------------------------------------
def api(base: str) -> httpx.Client:
    return httpx.Client(base_url=f"{base}/api/v1", headers=KEY, timeout=10)


def register(base: str, event: str, url: str, skip_own: bool = True) -> dict[str, Any]:
    r = HTTP.post(
        f"{base}/api/v1/Webhook", json={"event": event, "url": url, "skipOwn": skip_own}, headers=KEY, timeout=10
    )
    r.raise_for_status()
    return r.json()


def flush(base: str) -> dict[str, Any]:
    r = HTTP.post(f"{base}/_sandbox/webhooks/flush", timeout=30)
    r.raise_for_status()
    return r.json()


def configure(base: str, **config: Any) -> None:
    HTTP.post(f"{base}/_sandbox/config", json=config, timeout=10).raise_for_status()


def user(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    r = HTTP.request(method, f"{base}/_sandbox/user/{path}", json=body, timeout=10)
    r.raise_for_status()
    return r.json()


def verify_signature(header: str, body: bytes, webhook_id: str, secret: str) -> bool:
    """EspoCRM 9: base64("<webhookId>:" + lowercase hex HMAC-SHA256(raw body, secret))."""
    decoded = base64.b64decode(header)
    wid, _, hexdigest = decoded.partition(b":")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    return wid == webhook_id.encode() and hmac.compare_digest(hexdigest, expected)


def verify_legacy_signature(header: str, body: bytes, webhook_id: str, secret: str) -> bool:
    """Legacy X-Signature: base64("<webhookId>:" + RAW 32-byte HMAC-SHA256 digest)."""
    decoded = base64.b64decode(header)
    prefix = webhook_id.encode() + b":"
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return decoded.startswith(prefix) and hmac.compare_digest(decoded[len(prefix) :], expected)


# -- REST API -----------------------------------------------------------------------------------
def test_crud_list_and_auth(espocrm_url: str) -> None:
    with api(espocrm_url) as c:
        assert HTTP.get(f"{espocrm_url}/api/v1/{ENTITY}", timeout=10).status_code == 401
        assert HTTP.get(f"{espocrm_url}/api/v1/{ENTITY}", headers={"X-Api-Key": "wrong"}, timeout=10).status_code == 401

        created = c.post(f"/{ENTITY}", json={"name": "Adler", "ort": "Köln", "id": "forged"}).json()
        assert len(created["id"]) == 17 and all(ch in "0123456789abcdef" for ch in created["id"])
        assert created["id"] != "forged"
        assert created["versionNumber"] == 1 and created["createdAt"] and created["modifiedAt"]
        assert c.get(f"/{ENTITY}/{created['id']}").json()["name"] == "Adler"
        for i in range(4):
            c.post(f"/{ENTITY}", json={"name": f"Other {i}", "ort": "Bonn"})

        listed = c.get(f"/{ENTITY}", params={"maxSize": 2, "offset": 0}).json()
        assert listed["total"] == 5 and len(listed["list"]) == 2
        everything = [
            r["id"]
            for off in (0, 2, 4)
            for r in c.get(f"/{ENTITY}", params={"maxSize": 2, "offset": off}).json()["list"]
        ]
        assert len(set(everything)) == 5

        where = {"where[0][type]": "equals", "where[0][attribute]": "ort", "where[0][value]": "Köln", "select": "name"}
        found = c.get(f"/{ENTITY}", params=where).json()
        assert found["total"] == 1 and found["list"] == [{"id": created["id"], "name": "Adler"}]
        ordered = c.get(f"/{ENTITY}", params={"orderBy": "name", "order": "asc"}).json()["list"]
        assert [r["name"] for r in ordered] == sorted(r["name"] for r in ordered)

        too_big = c.get(f"/{ENTITY}", params={"maxSize": 201})
        assert too_big.status_code == 403

        assert c.get(f"/{ENTITY}/00000000000000000").status_code == 404
        assert c.delete(f"/{ENTITY}/{created['id']}").json() is True
        assert c.get(f"/{ENTITY}/{created['id']}").status_code == 404
        assert c.delete(f"/{ENTITY}/{created['id']}").status_code == 404

    stats = HTTP.get(f"{espocrm_url}/_sandbox/stats", timeout=10).json()
    assert stats["writes"][f"{ENTITY}.create"] == 5
    assert stats["writes"][f"{ENTITY}.delete"] == 1


def test_version_conflict_answers_409(espocrm_url: str) -> None:
    with api(espocrm_url) as c:
        rec = c.post(f"/{ENTITY}", json={"name": "Berg"}).json()
        ok = c.put(f"/{ENTITY}/{rec['id']}", json={"name": "Berger"}, headers={"X-Version-Number": "1"})
        assert ok.status_code == 200 and ok.json()["versionNumber"] == 2
        stale = c.patch(f"/{ENTITY}/{rec['id']}", json={"name": "Burg"}, headers={"X-Version-Number": "1"})
        assert stale.status_code == 409
        assert stale.json()["data"]["versionNumber"] == 2
        current = c.get(f"/{ENTITY}/{rec['id']}").json()
        assert current["name"] == "Berger" and current["versionNumber"] == 2
        # a no-op update changes nothing, not even the version
        assert c.put(f"/{ENTITY}/{rec['id']}", json={"name": "Berger"}).json()["versionNumber"] == 2


def test_seed_loads_generated_parties_deterministically(espocrm_url: str) -> None:
    from sandbox.firm import generate_firm

    expected = {p["id"] for p in generate_firm(3, parties=20).parties}
    for _ in range(2):
        answer = HTTP.post(f"{espocrm_url}/_sandbox/seed", json={"seed": 3, "parties": 20}, timeout=30).json()
        assert answer["records"][ENTITY] == 20
        with api(espocrm_url) as c:
            ids = {r["id"] for r in c.get(f"/{ENTITY}", params={"maxSize": 200}).json()["list"]}
        assert ids == expected
    HTTP.post(
        f"{espocrm_url}/_sandbox/seed", json={"records": {ENTITY: [{"id": "a" * 17, "name": "Explicit"}]}}, timeout=10
    )
    state = HTTP.get(f"{espocrm_url}/_sandbox/state", timeout=10).json()
    assert [r["name"] for r in state["records"][ENTITY]] == ["Explicit"]


# -- webhooks: content and signatures -----------------------------------------------------------
def test_signatures_both_headers_each_webhook_its_own_secret(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    create_hook = register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/create")
    update_hook = register(espocrm_url, f"{ENTITY}.update", f"{url}/hook/update")
    assert create_hook["secretKey"] != update_hook["secretKey"]
    listed = HTTP.get(f"{espocrm_url}/api/v1/Webhook", headers=KEY, timeout=10).json()
    assert {h["id"] for h in listed["list"]} == {create_hook["id"], update_hook["id"]}

    rec = user(espocrm_url, "POST", ENTITY, {"name": "Ärger & Co", "website": "https://x.example/a"})
    user(espocrm_url, "PUT", f"{ENTITY}/{rec['id']}", {"ort": "München/Süd"})
    flush(espocrm_url)

    assert len(rcv.received) == 2
    for delivery in rcv.received:
        hook = create_hook if delivery["name"] == "create" else update_hook
        other = update_hook if hook is create_hook else create_hook
        body, headers = delivery["body"], delivery["headers"]
        assert headers["content-type"].startswith("application/json")
        assert verify_signature(headers["signature"], body, hook["id"], hook["secretKey"])
        assert verify_legacy_signature(headers["x-signature"], body, hook["id"], hook["secretKey"])
        assert not verify_signature(headers["signature"], body, hook["id"], other["secretKey"])
        assert not verify_legacy_signature(headers["x-signature"], body, hook["id"], other["secretKey"])
        assert not verify_signature(headers["signature"], body + b" ", hook["id"], hook["secretKey"])
        # PHP's json_encode escapes "/" and non-ASCII: only the raw bytes verify
        assert b"\\/" in body and b"\\u00" in body
        reencoded = json.dumps(json.loads(body)).encode()
        assert not verify_signature(headers["signature"], reencoded, hook["id"], hook["secretKey"])


def test_item_contents_create_update_delete(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    for kind in ("create", "update", "delete"):
        register(espocrm_url, f"{ENTITY}.{kind}", f"{url}/hook/{kind}")
    field_hook = register(espocrm_url, f"{ENTITY}.fieldUpdate.ort", f"{url}/hook/field")
    assert field_hook["type"] == "fieldUpdate" and field_hook["field"] == "ort"
    rec = user(espocrm_url, "POST", ENTITY, {"name": "Cramer", "ort": "Kiel", "plz": "24103"})
    user(espocrm_url, "PUT", f"{ENTITY}/{rec['id']}", {"ort": "Lübeck", "plz": "24103"})  # plz unchanged
    user(espocrm_url, "PUT", f"{ENTITY}/{rec['id']}", {"name": "Cramer"})  # nothing changed: no item
    user(espocrm_url, "DELETE", f"{ENTITY}/{rec['id']}")
    flush(espocrm_url)

    [[created]] = rcv.bodies("create")
    assert created["id"] == rec["id"] and created["name"] == "Cramer" and created["plz"] == "24103"
    assert "createdAt" in created and "versionNumber" in created
    assert rcv.bodies("update") == [[{"id": rec["id"], "ort": "Lübeck"}]]
    assert rcv.bodies("field") == [[{"id": rec["id"], "ort": "Lübeck"}]]
    assert rcv.bodies("delete") == [[{"id": rec["id"]}]]


def test_batches_of_at_most_50_in_order(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/create")
    with httpx.Client(base_url=f"{espocrm_url}/_sandbox/user", timeout=10) as c:
        ids = [c.post(f"/{ENTITY}", json={"name": f"P{i}"}).json()["id"] for i in range(120)]
    outcome = flush(espocrm_url)
    assert [b["items"] for b in outcome["batches"]] == [50, 50, 20]
    bodies = rcv.bodies("create")
    assert [len(b) for b in bodies] == [50, 50, 20]
    assert [item["id"] for body in bodies for item in body] == ids
    assert flush(espocrm_url)["batches"] == []  # all delivered, nothing left
    assert HTTP.get(f"{espocrm_url}/_sandbox/stats", timeout=10).json()["requests"]["webhook.send"] == 3


def test_skip_own_suppresses_api_writes_not_user_edits(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    register(espocrm_url, f"{ENTITY}.update", f"{url}/hook/skip", skip_own=True)
    register(espocrm_url, f"{ENTITY}.update", f"{url}/hook/all", skip_own=False)
    with api(espocrm_url) as c:
        rec = c.post(f"/{ENTITY}", json={"name": "Dorn"}).json()
        c.put(f"/{ENTITY}/{rec['id']}", json={"advowareBetNr": 4711, "syncStatus": "synced"})
    user(espocrm_url, "PUT", f"{ENTITY}/{rec['id']}", {"name": "Dorn-Weber"})
    flush(espocrm_url)
    assert rcv.bodies("skip") == [[{"id": rec["id"], "name": "Dorn-Weber"}]]
    assert rcv.bodies("all") == [
        [{"id": rec["id"], "advowareBetNr": 4711, "syncStatus": "synced"}, {"id": rec["id"], "name": "Dorn-Weber"}]
    ]


# -- webhooks: delivery rules -------------------------------------------------------------------
def _log(base: str) -> list[dict[str, Any]]:
    return HTTP.get(f"{base}/_sandbox/webhooks/log", timeout=10).json()["deliveries"]


def test_503_is_retried_then_delivered(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    configure(espocrm_url, retry_delay_s=0)
    hook = register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/flaky")
    rcv.statuses["flaky"].extend([503])
    rec = user(espocrm_url, "POST", ENTITY, {"name": "Eck"})
    assert [b["result"] for b in flush(espocrm_url)["batches"]] == ["retry"]
    assert [b["result"] for b in flush(espocrm_url)["batches"]] == ["delivered"]
    assert flush(espocrm_url)["batches"] == []
    assert [(d["webhook_id"], d["status"], d["attempt"], d["items"]) for d in _log(espocrm_url)] == [
        (hook["id"], 503, 1, 1),
        (hook["id"], 200, 2, 1),
    ]
    assert [b[0]["id"] for b in rcv.bodies("flaky")] == [rec["id"], rec["id"]]


def test_retry_waits_for_the_retry_delay(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/slow")  # default delay: 600 s
    rcv.statuses["slow"].extend([500])
    user(espocrm_url, "POST", ENTITY, {"name": "Fink"})
    assert [b["result"] for b in flush(espocrm_url)["batches"]] == ["retry"]
    assert flush(espocrm_url)["batches"] == []  # not due for ten minutes
    assert len(rcv.received) == 1


def test_retryable_status_gives_up_after_4_attempts(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    configure(espocrm_url, retry_delay_s=0)
    register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/down")
    rcv.statuses["down"].extend([500, 503, 408, 404, 200])
    user(espocrm_url, "POST", ENTITY, {"name": "Graf"})
    results = [flush(espocrm_url)["batches"] for _ in range(5)]
    assert [[b["result"] for b in r] for r in results] == [["retry"], ["retry"], ["retry"], ["failed"], []]
    assert [d["attempt"] for d in _log(espocrm_url)] == [1, 2, 3, 4]
    assert len(rcv.received) == 4


@pytest.mark.parametrize("status", [400, 422, 502])
def test_other_errors_fail_at_once(espocrm_url: str, receiver, status: int) -> None:
    rcv, url = receiver
    configure(espocrm_url, retry_delay_s=0)
    register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/bad")
    rcv.statuses["bad"].append(status)
    user(espocrm_url, "POST", ENTITY, {"name": "Hahn"})
    assert [b["result"] for b in flush(espocrm_url)["batches"]] == ["failed"]
    assert flush(espocrm_url)["batches"] == []
    assert len(rcv.received) == 1


def test_410_deletes_the_webhook(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    gone = register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/gone")
    kept = register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/kept")
    rcv.statuses["gone"].append(410)
    user(espocrm_url, "POST", ENTITY, {"name": "Igel"})
    flush(espocrm_url)
    listed = HTTP.get(f"{espocrm_url}/api/v1/Webhook", headers=KEY, timeout=10).json()["list"]
    assert [h["id"] for h in listed] == [kept["id"]]
    assert HTTP.get(f"{espocrm_url}/api/v1/Webhook/{gone['id']}", headers=KEY, timeout=10).status_code == 404
    user(espocrm_url, "POST", ENTITY, {"name": "Jung"})
    flush(espocrm_url)
    assert len(rcv.bodies("gone")) == 1 and len(rcv.bodies("kept")) == 2


def test_connection_error_is_retried(espocrm_url: str) -> None:
    from sandbox.runner import free_port

    configure(espocrm_url, retry_delay_s=0)
    register(espocrm_url, f"{ENTITY}.delete", f"http://127.0.0.1:{free_port()}/nobody")
    rec = user(espocrm_url, "POST", ENTITY, {"name": "Kahn"})
    user(espocrm_url, "DELETE", f"{ENTITY}/{rec['id']}")
    [batch] = flush(espocrm_url)["batches"]
    assert batch["status"] is None and batch["error"] and batch["result"] == "retry"


def test_webhook_delete_and_auto_flush(espocrm_url: str, receiver) -> None:
    rcv, url = receiver
    dropped = register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/dropped")
    assert HTTP.delete(f"{espocrm_url}/api/v1/Webhook/{dropped['id']}", headers=KEY, timeout=10).json()
    register(espocrm_url, f"{ENTITY}.create", f"{url}/hook/auto")
    configure(espocrm_url, auto_flush_s=0.1)
    rec = user(espocrm_url, "POST", ENTITY, {"name": "Lorenz"})
    deadline = time.monotonic() + 10
    while not rcv.bodies("auto") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [b[0]["id"] for b in rcv.bodies("auto")] == [rec["id"]]
    assert rcv.bodies("dropped") == []
    HTTP.post(f"{espocrm_url}/_sandbox/reset", timeout=10)  # stops the background sender
    assert HTTP.get(f"{espocrm_url}/_sandbox/state", timeout=10).json()["config"]["auto_flush_s"] == 0
