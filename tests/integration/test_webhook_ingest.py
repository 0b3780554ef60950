"""The gateway's webhook path against the real Redis and hub: shapes, ids, limits, coalescing, the
coalesced DAG trigger, dead letters (API + CLI), metrics; and EspoCRM's own sender (the sandbox)
delivering to webhooks registered by `kanzlei-sync register-webhooks`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from include import cli
from include.hub import dead_letters
from include.hub.db import connect
from include.queue.party_queue import PartyQueue
from include.settings import (
    AirflowApiSettings,
    EspoCrmSettings,
    GatewaySettings,
    PostgresSettings,
    Settings,
)
from sandbox.runner import ServerThread, free_port
from tests.gateway_helpers import gateway_logs
from tests.party_helpers import wait_for
from tests.redis_helpers import is_pending
from webhook_gateway.app import create_app
from webhook_gateway.ingest import MAX_ITEMS

SECRET = "ingest-test-secret"
WRITE, READ = "write-token-for-tests", "read-token-for-tests"


def build_settings(
    redis_url: str,
    hub_dsn: str,
    *,
    secret: str = SECRET,
    allow_unsigned: bool = False,
    max_body: int = 1024 * 1024,
    airflow_url: str | None = None,
    espocrm_url: str = "http://127.0.0.1:9",
) -> Settings:
    info = psycopg.conninfo.conninfo_to_dict(hub_dsn)
    return Settings(
        redis_url=redis_url,
        espocrm=EspoCrmSettings(
            base_url=espocrm_url,
            api_key="sandbox-espocrm-key",
            webhook_secret=secret,
            webhook_allow_unsigned=allow_unsigned,
            webhook_max_body_bytes=max_body,
        ),
        postgres=PostgresSettings(
            host=info.get("host", "127.0.0.1"),
            port=int(info.get("port", 5432)),
            db=info["dbname"],
            user=info.get("user", "postgres"),
        ),
        # default: a port nobody listens on (Airflow "down"); tests that need it pass a fake
        airflow_api=AirflowApiSettings(
            url=airflow_url or f"http://127.0.0.1:{free_port()}", username="gateway", password="s3cret-pw", timeout_s=2
        ),
        gateway=GatewaySettings(api_token=WRITE, read_token=READ),
    )


def signed(body: bytes, secret: str = SECRET, webhook_id: str = "6650aaaabbbbcccc0") -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Signature": base64.b64encode(f"{webhook_id}:{mac}".encode()).decode()}


@pytest.fixture
def queue(redis_url: str) -> PartyQueue:
    return PartyQueue(redis.Redis.from_url(redis_url))


@pytest.fixture
def client(redis_url: str, hub: str) -> Iterator[TestClient]:
    with TestClient(create_app(build_settings(redis_url, hub))) as c:
        yield c


def deliver(client: TestClient, items: object, event: str = "update", raw: bytes | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(items).encode()
    return client.post(f"/webhooks/vmh/beteiligte/{event}", content=body, headers=signed(body))


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"{not json", "not valid JSON"),
        (b'{"id": "abc"}', "JSON array of objects, got dict"),
        (b'["abc", "def"]', "item 0 is str"),
        (b"", "not valid JSON"),
    ],
)
def test_a_body_that_can_never_succeed_is_400_with_the_reason(
    client: TestClient, queue: PartyQueue, raw: bytes, why: str
) -> None:
    r = deliver(client, None, raw=raw)
    assert r.status_code == 400
    assert why in r.json()["message"]
    assert queue.stats().pending == 0


def test_mixed_items_store_the_valid_and_report_the_invalid(client: TestClient, queue: PartyQueue, hub: str) -> None:
    items = [
        {"id": "good1", "name": "A"},
        {"name": "no id"},
        {"id": 42},
        {"id": ""},
        {"id": "x" * 65},
        {"id": "bad id!"},
        {"id": "good2"},
    ]
    r = deliver(client, items, "create")
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [x["index"] for x in body["rejected"]] == [1, 2, 3, 4, 5]
    assert body["rejected"][0]["reason"] == "missing id" and "string" in body["rejected"][1]["reason"]
    assert is_pending(queue, "good1") and is_pending(queue, "good2")
    assert queue.stats().pending == 2

    def parked() -> list[dict]:
        with connect(hub) as conn:
            return dead_letters.list_(conn, source="webhook")

    rows = wait_for(lambda: len(parked()) == 5 and parked())
    assert sorted(r["payload"]["index"] for r in rows) == [1, 2, 3, 4, 5]
    assert all(r["entity_id"] is None for r in rows)


def test_an_empty_batch_is_fine(client: TestClient) -> None:
    assert deliver(client, []).json() == {"accepted": 0, "duplicates": 0, "rejected": []}


def test_over_the_limit_is_413_and_logged_without_body_content(
    redis_url: str, hub: str, queue: PartyQueue, caplog: pytest.LogCaptureFixture
) -> None:
    items = [{"id": f"big{i:03d}", "name": "Secret Client Name", "note": "y" * 100} for i in range(50)]
    body = json.dumps(items).encode()
    with (
        TestClient(create_app(build_settings(redis_url, hub, max_body=2048))) as c,
        caplog.at_level(logging.INFO, logger="webhook_gateway"),
    ):
        r = c.post("/webhooks/vmh/beteiligte/update", content=body, headers=signed(body))
        assert r.status_code == 413
        small = json.dumps([{"id": "small1"}]).encode()
        ok = c.post("/webhooks/vmh/beteiligte/update", content=small, headers=signed(small))
        assert ok.status_code == 200
    log = "\n".join(rec.getMessage() for rec in caplog.records)
    # the cut body's signature cannot be checked: an unchecked sender's ids go into no log
    assert "big000" not in log and "Secret Client Name" not in log and str(len(body)) in log
    assert not is_pending(queue, "big010")


def test_every_delivery_marks_pending_again_and_redeliveries_are_counted(client: TestClient, queue: PartyQueue) -> None:
    first = deliver(client, [{"id": "p1", "name": "A"}])
    assert first.json()["duplicates"] == 0
    [claimed] = queue.claim()
    assert queue.ack(claimed) == "done"
    assert deliver(client, [{"id": "p1", "name": "B"}]).json()["duplicates"] == 0
    again = deliver(client, [{"id": "p1", "name": "A"}])  # byte-identical to the first: counted, still queued
    assert again.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert is_pending(queue, "p1")
    [claimed] = queue.claim()
    assert claimed.deliveries == 2


def test_a_delete_is_not_lost_behind_a_later_create(client: TestClient, queue: PartyQueue) -> None:
    deliver(client, [{"id": "d1"}], "delete")
    deliver(client, [{"id": "d1", "name": "again"}], "create")
    [p] = queue.claim()
    assert p.delete_seen and p.kinds == {"delete", "create"} and p.last_kind == "create"


def test_unknown_event_path_is_404(client: TestClient) -> None:
    assert deliver(client, [{"id": "a"}], "fieldUpdate").status_code == 404


def test_a_get_is_405_and_errors_carry_the_request_id(client: TestClient) -> None:
    r = client.get("/webhooks/vmh/beteiligte/update")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    refused = client.post("/webhooks/vmh/beteiligte/update", content=b"[]", headers={"X-Request-ID": "espo-42"})
    assert refused.status_code == 401
    assert refused.json()["request_id"] == "espo-42" == refused.headers["x-request-id"]
    assert refused.json()["status"] == 401 and "Signature" in refused.json()["message"]


def test_a_run_is_triggered_after_the_answer_and_coalesced(redis_url: str, hub: str) -> None:
    from tests.integration.test_airflow_api import make_fake_airflow

    airflow = make_fake_airflow()
    with ServerThread(airflow) as af, TestClient(create_app(build_settings(redis_url, hub, airflow_url=af.url))) as c:
        for i in range(10):
            assert deliver(c, [{"id": f"t{i}"}]).status_code == 200
        wait_for(lambda: airflow.state.runs)
        resources = c.app.state.resources.webhooks
        c.portal.call(resources.trigger.wait)  # the coalesced checks have all finished
        runs = list(airflow.state.runs.values())
        assert len(runs) == 1 and runs[0]["state"] == "queued" and runs[0]["logical_date"] is None
        runs[0]["state"] = "running"  # the DAG picked it up: the next delivery needs a new queued run
        deliver(c, [{"id": "t-late"}])
        wait_for(lambda: len(airflow.state.runs) == 2)
        c.portal.call(resources.trigger.wait)
        metrics = c.get("/metrics").text
        assert 'vmh_webhook_dag_triggers_total{outcome="triggered"} ' in metrics


def test_airflow_down_still_answers_2xx_and_keeps_the_ids(client: TestClient, queue: PartyQueue) -> None:
    r = deliver(client, [{"id": "wait-for-sweep"}])
    assert r.status_code == 200 and is_pending(queue, "wait-for-sweep")


def test_metrics_count_accepted_rejected_and_errors(client: TestClient) -> None:
    def value(name: str, **labels: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def values() -> list[float]:
        return [
            value("vmh_webhook_accepted_total", event="create"),
            value("vmh_webhook_rejected_total", event="create"),
            value("vmh_webhook_errors_total", event="create", status="401"),
            value("vmh_webhook_request_seconds_count", event="create"),
            value("vmh_webhook_duplicates_total", event="create"),
            value("vmh_webhook_errors_total", event="create", status="400"),
        ]

    before = values()
    # known traffic: 2 ids and 1 without an id, the same delivery again (2 duplicates, still queued),
    # one unsigned request (401), one body that is not JSON (400)
    deliver(client, [{"id": "m1"}, {"id": "m2"}, {}], "create")
    deliver(client, [{"id": "m1"}, {"id": "m2"}, {}], "create")
    client.post("/webhooks/vmh/beteiligte/create", content=b"[]")
    deliver(client, None, "create", raw=b"{not json")
    after = values()
    # accepted 4, rejected 2, 401 once, the 2 stored deliveries timed (refusals are counted, not timed),
    # 2 duplicate items, 400 once
    assert [a - b for a, b in zip(after, before, strict=True)] == [4, 2, 1, 2, 2, 1]


# -- dead letters ----------------------------------------------------------------------------------
def test_dead_letters_api_needs_the_write_token_and_replays(client: TestClient, queue: PartyQueue, hub: str) -> None:
    with connect(hub) as conn:
        failed = dead_letters.add(conn, source="beteiligte_sync", entity_id="dl1", reason="HTTP 500", attempts=5)
        no_id = dead_letters.add(conn, source="webhook", reason="missing id", payload={"index": 0})
    assert client.get("/webhooks/dead-letters").status_code == 401
    read_only = {"Authorization": f"Bearer {READ}"}
    assert client.get("/webhooks/dead-letters", headers=read_only).status_code == 403
    auth = {"Authorization": f"Bearer {WRITE}"}
    listed = client.get("/webhooks/dead-letters", headers=auth).json()
    assert [d["id"] for d in listed["dead_letters"]] == [failed, no_id]

    r = client.post(f"/webhooks/dead-letters/{failed}/replay", headers=auth)
    assert r.status_code == 200 and r.json()["replayed"]["replayed_at"]
    [p] = queue.claim()
    assert p.id == "dl1" and p.kinds == {"replay"}
    assert client.post(f"/webhooks/dead-letters/{failed}/replay", headers=auth).status_code == 409
    assert client.post(f"/webhooks/dead-letters/{no_id}/replay", headers=auth).status_code == 409
    assert client.post("/webhooks/dead-letters/999999/replay", headers=auth).status_code == 404
    assert (
        client.post(f"/webhooks/dead-letters/{failed}/replay", headers={"Authorization": f"Bearer {READ}"}).status_code
        == 403
    )
    still_open = client.get("/webhooks/dead-letters", headers=auth).json()["dead_letters"]
    assert [d["id"] for d in still_open] == [no_id]


def test_dead_letters_cli_lists_and_replays(
    redis_url: str, hub: str, queue: PartyQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = build_settings(redis_url, hub)
    with connect(hub) as conn:
        dl = dead_letters.add(conn, source="beteiligte_sync", entity_id="cli1", reason="Advoware said 400")
    assert cli.main(["dead-letters", "list"], settings) == 0
    out = capsys.readouterr().out
    assert "cli1" in out and "Advoware said 400" in out
    assert cli.main(["dead-letters", "replay", str(dl)], settings) == 0  # Airflow down: still queued
    assert is_pending(queue, "cli1")
    assert cli.main(["dead-letters", "replay", str(dl)], settings) == 2
    assert "already replayed" in capsys.readouterr().err
    assert cli.main(["dead-letters", "list", "--json"], settings) == 0
    assert json.loads(capsys.readouterr().out) == []


# -- EspoCRM's own sender --------------------------------------------------------------------------
def test_registered_webhooks_deliver_signed_batches_from_espocrm(
    redis_url: str, hub: str, espocrm_url: str, queue: PartyQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    base = build_settings(redis_url, hub, espocrm_url=espocrm_url)
    assert cli.main(["register-webhooks", "--gateway-url", gateway_url], base) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("ESPOCRM_WEBHOOK_SECRET=") and line.count("=") == 4  # three webhookId=secret pairs
    secret = line.split("=", 1)[1]
    hooks = httpx.get(f"{espocrm_url}/_sandbox/state").json()["webhooks"]
    assert sorted(h["event"] for h in hooks) == [f"CBeteiligte.{e}" for e in ("create", "delete", "update")]
    assert all(h["skipOwn"] for h in hooks)

    settings = build_settings(redis_url, hub, secret=secret, espocrm_url=espocrm_url)
    with ServerThread(create_app(settings), port=port):
        user = f"{espocrm_url}/_sandbox/user/CBeteiligte"
        a = httpx.post(user, json={"name": "Erika Musterfrau"}).json()
        b = httpx.post(user, json={"name": "Max Mustermann"}).json()
        httpx.put(f"{user}/{a['id']}", json={"name": "Erika Muster"})
        httpx.delete(f"{user}/{b['id']}")
        httpx.post(f"{espocrm_url}/_sandbox/webhooks/flush").raise_for_status()
    deliveries = httpx.get(f"{espocrm_url}/_sandbox/webhooks/log").json()["deliveries"]
    assert deliveries and all(d["status"] == 200 for d in deliveries), deliveries
    got = {p.id: p for p in queue.claim()}
    assert set(got) == {a["id"], b["id"]}
    assert got[a["id"]].kinds == {"create", "update"}
    assert got[b["id"]].delete_seen


def test_behind_a_proxy_with_a_root_path_the_webhook_is_still_found(
    redis_url: str, hub: str, queue: PartyQueue
) -> None:
    body = json.dumps([{"id": "rooted1"}]).encode()
    with TestClient(create_app(build_settings(redis_url, hub)), root_path="/gateway") as c:
        assert c.get("/gateway/healthz").status_code == 200  # the router's view of the same request
        r = c.post("/gateway/webhooks/vmh/beteiligte/update", content=body, headers=signed(body))
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert is_pending(queue, "rooted1")


# -- hostile input ---------------------------------------------------------------------------------
def test_deeply_nested_json_is_400_without_a_traceback(client: TestClient, queue: PartyQueue) -> None:
    with gateway_logs() as logs:
        r = deliver(client, None, raw=b"[" * 100_000)
    assert r.status_code == 400 and "nested" in r.json()["message"]
    assert logs.errors() == [] and queue.stats().pending == 0


def test_more_items_than_the_cap_is_413_and_nothing_is_queued(client: TestClient, queue: PartyQueue) -> None:
    at_cap = deliver(client, [{"id": f"c{i}"} for i in range(MAX_ITEMS)])
    assert at_cap.status_code == 200 and at_cap.json()["accepted"] == MAX_ITEMS
    over = deliver(client, [{"id": f"o{i}"} for i in range(MAX_ITEMS + 1)])
    assert over.status_code == 413
    assert over.json()["limit_items"] == MAX_ITEMS and f"more than {MAX_ITEMS} items" in over.json()["message"]
    assert not is_pending(queue, "o0") and queue.stats().pending == MAX_ITEMS


def test_dead_letter_paging_out_of_range_is_422_not_an_outage(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {WRITE}"}
    with gateway_logs() as logs:
        huge = client.get("/webhooks/dead-letters", params={"offset": "99999999999999999999"}, headers=auth)
        negative = client.get("/webhooks/dead-letters", params={"offset": "-1"}, headers=auth)
        replay = client.post("/webhooks/dead-letters/99999999999999999999/replay", headers=auth)
    assert (huge.status_code, negative.status_code, replay.status_code) == (422, 422, 422)
    assert logs.errors() == []
    assert client.get("/webhooks/dead-letters", params={"offset": 2**63 - 1}, headers=auth).json()["count"] == 0


def test_the_access_log_cannot_be_forged(client: TestClient) -> None:
    forged = "2026-11-30 14:50:00,000 INFO webhook_gateway.webhooks: webhook delete: accepted FORGED-ID"
    with gateway_logs() as logs:
        client.get("/x%0a" + forged.replace(" ", "%20"))
        client.get("/webhooks/dead-letters%0d%0aFORGED", headers={"X-Request-ID": "ok-1"})
    lines = "\n".join(logs.lines())
    assert "\nFORGED" not in lines and "\n" + forged not in lines and "\rFORGED" not in lines
    assert "/x%0a2026" in lines  # the path is there, as sent (percent-encoded)


@pytest.mark.parametrize(("allow_unsigned", "status"), [(False, 401), (True, 413)])
def test_over_the_limit_unsigned_logs_no_ids(redis_url: str, hub: str, allow_unsigned: bool, status: int) -> None:
    body = json.dumps([{"id": f"big{i:03d}", "note": "y" * 100} for i in range(50)]).encode()
    settings = build_settings(redis_url, hub, max_body=2048, allow_unsigned=allow_unsigned)
    with TestClient(create_app(settings)) as c, gateway_logs() as logs:
        r = c.post("/webhooks/vmh/beteiligte/update", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status  # unsigned and not allowed: refused before the body is read
    assert "big000" not in "\n".join(logs.lines())
