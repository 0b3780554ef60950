"""EspoCRM client against the EspoCRM sandbox: CRUD, paging, typed errors, retries, the Airflow hook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from include.espocrm import (
    AuthError,
    ConflictError,
    EspoCrmClient,
    ForbiddenError,
    NotFoundError,
    TransientError,
    UnavailableError,
)

# one client for the helpers: building an httpx client per call costs more than the call
HTTP = httpx.Client(timeout=10)
KEY = "sandbox-espocrm-key"
ENTITY = "CBeteiligte"


@pytest.fixture
def client(espocrm_url: str) -> Iterator[EspoCrmClient]:
    with EspoCrmClient(espocrm_url, KEY, timeout_s=2, max_retries=3, backoff_initial_s=0.01, backoff_max_s=0.05) as c:
        yield c


def faults(base: str, *specs: dict[str, Any]) -> None:
    HTTP.post(f"{base}/_sandbox/faults", json={"faults": list(specs)}, timeout=10).raise_for_status()


def stats(base: str) -> dict[str, Any]:
    return HTTP.get(f"{base}/_sandbox/stats", timeout=10).json()


def test_crud_round_trip(client: EspoCrmClient, espocrm_url: str) -> None:
    rec = client.create(ENTITY, {"name": "Adler", "ort": "Köln"})
    assert client.get(ENTITY, rec["id"])["name"] == "Adler"
    updated = client.update(ENTITY, rec["id"], {"advowareBetNr": 17}, version_number=rec["versionNumber"])
    assert updated["advowareBetNr"] == 17 and updated["versionNumber"] == rec["versionNumber"] + 1
    client.delete(ENTITY, rec["id"])
    with pytest.raises(NotFoundError) as err:
        client.get(ENTITY, rec["id"])
    assert err.value.status == 404 and f"/{ENTITY}/{rec['id']}" in str(err.value)
    # a base URL that already names the API root works the same
    with EspoCrmClient(f"{espocrm_url}/api/v1/", KEY) as again:
        assert again.list(ENTITY) == []


def test_list_pages_through_everything_with_where_and_select(client: EspoCrmClient, espocrm_url: str) -> None:
    rows = [
        {
            "id": f"{i:017x}",
            "name": f"P{i:03d}",
            "ort": "Kiel" if i % 3 == 0 else "Bonn",
            "createdAt": f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}",
        }
        for i in range(450)
    ]
    seeded = HTTP.post(f"{espocrm_url}/_sandbox/seed", json={"records": {ENTITY: rows}}, timeout=30)
    seeded.raise_for_status()

    everything = client.list(ENTITY)
    assert [r["id"] for r in everything] == [r["id"] for r in rows]  # oldest first, none twice
    assert stats(espocrm_url)["requests"][f"{ENTITY}.list"] == 3  # 200 + 200 + 50

    kiel = client.list(ENTITY, where={"ort": "Kiel"}, select=["name"], max_size=40)
    assert len(kiel) == 150 and set(kiel[0]) == {"id", "name"}
    clauses = [
        {"type": "in", "attribute": "name", "value": ["P001", "P002", "P404"]},
        {
            "type": "or",
            "value": [{"type": "equals", "attribute": "ort", "value": "Bonn"}, {"type": "isNull", "attribute": "ort"}],
        },
    ]
    assert sorted(r["name"] for r in client.list(ENTITY, where=clauses)) == ["P001", "P002", "P404"]
    with pytest.raises(ValueError):
        client.list(ENTITY, max_size=201)
    with pytest.raises(ForbiddenError):  # what EspoCRM says to a page over 200
        client.request("GET", ENTITY, params={"maxSize": 500})


def test_errors_are_typed_and_never_show_the_key(espocrm_url: str) -> None:
    secret = "wrong-key-do-not-print"
    with EspoCrmClient(espocrm_url, secret, max_retries=3, backoff_initial_s=0.01) as bad:
        with pytest.raises(AuthError) as err:
            bad.get(ENTITY, "whatever")
    assert err.value.status == 401 and err.value.method == "GET"
    assert secret not in str(err.value) and secret not in repr(err.value.__dict__)
    assert stats(espocrm_url)["requests"][f"{ENTITY}.get"] == 1  # a 401 is not retried


def test_stale_version_raises_conflict_with_current_values(client: EspoCrmClient) -> None:
    rec = client.create(ENTITY, {"name": "Berg"})
    client.update(ENTITY, rec["id"], {"name": "Berger"})  # someone else moved it on
    with pytest.raises(ConflictError) as err:
        client.update(ENTITY, rec["id"], {"name": "Burg"}, version_number=rec["versionNumber"])
    assert err.value.status == 409 and err.value.data["data"]["name"] == "Berger"
    assert client.get(ENTITY, rec["id"])["name"] == "Berger"


def test_get_is_retried_on_503_and_dropped_connections(client: EspoCrmClient, espocrm_url: str) -> None:
    rec = client.create(ENTITY, {"name": "Cramer"})
    faults(
        espocrm_url,
        {"match": f"{ENTITY}.get", "kind": "status", "status": 503, "count": 1, "retry_after": 0},
        {"match": f"{ENTITY}.get", "kind": "drop", "count": 1},
        {"match": f"{ENTITY}.get", "kind": "status", "status": 429, "count": 1},
    )
    assert client.get(ENTITY, rec["id"])["name"] == "Cramer"
    assert stats(espocrm_url)["requests"][f"{ENTITY}.get"] == 4


def test_retries_give_up_with_a_typed_error(client: EspoCrmClient, espocrm_url: str) -> None:
    faults(espocrm_url, {"match": f"{ENTITY}.list", "kind": "status", "status": 500, "count": 10})
    with pytest.raises(TransientError) as err:
        client.list(ENTITY)
    assert err.value.status == 500 and err.value.attempts == 4
    assert stats(espocrm_url)["requests"][f"{ENTITY}.list"] == 4
    faults(espocrm_url, {"match": f"{ENTITY}.get", "kind": "timeout", "delay_s": 1.0, "count": 10})
    with EspoCrmClient(espocrm_url, KEY, timeout_s=0.2, max_retries=1, backoff_initial_s=0.01) as fast:
        with pytest.raises(UnavailableError):
            fast.get(ENTITY, "00000000000000000")


def test_post_is_not_retried_blindly(client: EspoCrmClient, espocrm_url: str) -> None:
    faults(espocrm_url, {"match": f"{ENTITY}.create", "kind": "status", "status": 503, "count": 1})
    with pytest.raises(TransientError):
        client.create(ENTITY, {"name": "Dorn"})
    assert stats(espocrm_url)["requests"][f"{ENTITY}.create"] == 1
    # 429 means "refused before doing anything": that one is safe to repeat
    faults(espocrm_url, {"match": f"{ENTITY}.create", "kind": "status", "status": 429, "count": 1})
    client.create(ENTITY, {"name": "Dorn"})
    assert stats(espocrm_url)["requests"][f"{ENTITY}.create"] == 3
    assert [r["name"] for r in client.list(ENTITY)] == ["Dorn"]


def test_update_and_delete_whose_answer_was_lost_still_succeed(espocrm_url: str) -> None:
    """The first attempt lands after the client gave up; the retry then meets 409 / 404."""
    with EspoCrmClient(espocrm_url, KEY, timeout_s=0.25, max_retries=2, backoff_initial_s=0.6) as slow:
        rec = slow.create(ENTITY, {"name": "Eck"})
        faults(espocrm_url, {"match": f"{ENTITY}.update", "kind": "timeout", "delay_s": 0.4, "count": 1})
        result = slow.update(ENTITY, rec["id"], {"syncStatus": "synced"}, version_number=1)
        assert result["syncStatus"] == "synced" and result["versionNumber"] == 2
        faults(espocrm_url, {"match": f"{ENTITY}.delete", "kind": "timeout", "delay_s": 0.4, "count": 1})
        slow.delete(ENTITY, rec["id"])
        with pytest.raises(NotFoundError):
            slow.get(ENTITY, rec["id"])
        counted = stats(espocrm_url)["requests"]
        assert counted[f"{ENTITY}.update"] == 2 and counted[f"{ENTITY}.delete"] == 2  # both were retried
        with pytest.raises(NotFoundError):  # a plain 404 on the first attempt stays an error
            slow.delete(ENTITY, rec["id"])


def test_register_list_and_delete_webhooks(client: EspoCrmClient) -> None:
    hook = client.register_webhook(f"{ENTITY}.update", "http://127.0.0.1:8000/webhooks/vmh/beteiligte/update")
    assert hook["id"] and len(hook["secretKey"]) >= 16 and hook["skipOwn"] is True
    assert [h["id"] for h in client.list_webhooks()] == [hook["id"]]
    client.delete_webhook(hook["id"])
    assert client.list_webhooks() == []


def test_from_settings_reads_the_environment(espocrm_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from include.settings import EspoCrmSettings

    monkeypatch.setenv("ESPOCRM_BASE_URL", espocrm_url)
    monkeypatch.setenv("ESPOCRM_API_KEY", KEY)
    monkeypatch.setenv("ESPOCRM_ENTITY", "CParty")
    with EspoCrmClient.from_settings(EspoCrmSettings()) as c:
        assert c.entity == "CParty"
        assert c.create("CParty", {"name": "Fink"})["name"] == "Fink"


# -- Airflow hook -------------------------------------------------------------------------------
def test_airflow_lists_the_espocrm_connection_type_and_hook_builds_a_client(
    espocrm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from include.airflow_provider.hooks.espocrm import EspoCrmHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_ESPOCRM_DEFAULT",
        json.dumps({"conn_type": "espocrm", "host": espocrm_url, "password": KEY, "extra": {"entity": ENTITY}}),
    )
    monkeypatch.delenv("ESPOCRM_API_KEY", raising=False)

    info = ProvidersManagerTaskRuntime().hooks["espocrm"]  # what tasks resolve the conn type with
    manager = ProvidersManager()  # what the UI's connection form reads
    assert info is not None and info.hook_class_name == "include.airflow_provider.hooks.espocrm.EspoCrmHook"
    assert info.connection_id_attribute_name == "espocrm_conn_id"
    behaviour = manager.field_behaviours["espocrm"]
    assert behaviour["relabeling"]["password"] == "API key" and "login" in behaviour["hidden_fields"]
    assert EspoCrmHook.get_ui_field_behaviour()["relabeling"]["host"] == "Base URL"

    hook = EspoCrmHook()
    client = hook.get_conn()
    try:
        assert client.base_url == f"{espocrm_url}/api/v1/"
        created = client.create(ENTITY, {"name": "Graf"})
        assert client.get(ENTITY, created["id"])["name"] == "Graf"
        ok, message = hook.test_connection()
        assert ok, message
    finally:
        hook.close()
