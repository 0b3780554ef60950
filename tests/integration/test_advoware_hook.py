"""The `advoware` Airflow connection type: registered with the providers manager, built from an
AIRFLOW_CONN_* env connection (or ADVOWARE_* alone), reaching the sandbox, secrets masked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from include.advoware import AdvowareClient, WriteProtectedError
from sandbox import advoware as sbx

ADVOWARE_ENV = (
    "BASE_URL",
    "AUTH_URL",
    "CONFIGURATOR_URL",
    "USERNAME",
    "PASSWORD",
    "APP_ID",
    "API_KEY",
    "KANZLEI",
    "DATABASE",
    "WRITE_PROTECTION",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # no stray ADVOWARE_* from the shell and no .env from the working directory
    for name in ADVOWARE_ENV:
        monkeypatch.delenv(f"ADVOWARE_{name}", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_ADVOWARE_DEFAULT", raising=False)
    monkeypatch.chdir(tmp_path)


def conn_json(url: str, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "advoware",
            "host": url,
            "login": sbx.USERNAME,
            "password": sbx.PASSWORD,
            "extra": {
                "kanzlei": sbx.KANZLEI,
                "database": sbx.DATABASE,
                "app_id": sbx.APP_ID,
                "api_key": sbx.API_KEY,
                "role": 2,
                **extra,
            },
        }
    )


def seed(url: str) -> None:
    httpx.post(
        f"{url}/_sandbox/seed", json={"mitarbeiter": [{"kuerzel": "AB", "name": "A", "aktiv": True}]}
    ).raise_for_status()


def test_connection_type_is_listed_by_the_providers_manager() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManager()
    assert "kanzlei-sync" in pm.providers
    hook = ProvidersManagerTaskRuntime().hooks["advoware"]  # what a task resolves the type with
    assert hook is not None
    assert hook.hook_class_name == "include.airflow_provider.hooks.advoware.AdvowareHook"
    assert hook.connection_id_attribute_name == "advoware_conn_id"
    widgets = pm.connection_form_widgets
    assert widgets["extra__advoware__api_key"].is_sensitive
    assert {"auth_url", "kanzlei", "database", "app_id", "role"} <= {
        k.removeprefix("extra__advoware__") for k in widgets if k.startswith("extra__advoware__")
    }
    assert pm.field_behaviours["advoware"]["relabeling"]["host"] == "API base URL"


def test_hook_from_env_connection_reaches_the_sandbox(
    advoware_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.log import redact

    from include.airflow_provider.hooks.advoware import AdvowareHook

    seed(advoware_url)
    monkeypatch.setenv("AIRFLOW_CONN_ADVOWARE_DEFAULT", conn_json(advoware_url))
    monkeypatch.setenv("REDIS_URL", redis_url)
    hook = AdvowareHook()
    client = hook.get_conn()
    try:
        assert isinstance(client, AdvowareClient)
        assert [m["kuerzel"] for m in client.list_mitarbeiter()] == ["AB"]
        assert client.settings.kanzlei == sbx.KANZLEI and client.settings.base_url == advoware_url
        assert client.token_cache.peek()  # the token is shared through the REDIS_URL database
        import redis

        assert redis.Redis.from_url(redis_url).exists(client.token_cache.key)
        # the task-log masker knows both secrets
        masked = str(redact(f"password={sbx.PASSWORD} key={sbx.API_KEY}"))
        assert sbx.PASSWORD not in masked and sbx.API_KEY not in masked
        assert hook.test_connection()[0] is True
    finally:
        hook.close()
    assert httpx.get(f"{advoware_url}/_sandbox/stats").json()["requests"]["Mitarbeiter.list"] == 2


def test_same_settings_work_from_env_alone(
    advoware_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from include.airflow_provider.hooks.advoware import AdvowareHook

    seed(advoware_url)
    (tmp_path / ".env").write_text(
        f"ADVOWARE_BASE_URL={advoware_url}\nADVOWARE_USERNAME={sbx.USERNAME}\nADVOWARE_PASSWORD={sbx.PASSWORD}\n"
        f"ADVOWARE_APP_ID={sbx.APP_ID}\nADVOWARE_API_KEY={sbx.API_KEY}\nADVOWARE_KANZLEI={sbx.KANZLEI}\n"
        f"ADVOWARE_DATABASE={sbx.DATABASE}\n"
    )
    monkeypatch.setenv("REDIS_URL", redis_url)
    hook = AdvowareHook()  # no connection defined: .env alone
    try:
        assert hook.get_conn().list_mitarbeiter()[0]["kuerzel"] == "AB"
    finally:
        hook.close()


def test_write_protection_from_env_holds_for_a_connection(
    advoware_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.airflow_provider.hooks.advoware import AdvowareHook

    monkeypatch.setenv("AIRFLOW_CONN_ADVOWARE_DEFAULT", conn_json(advoware_url, write_protection=False))
    monkeypatch.setenv("ADVOWARE_WRITE_PROTECTION", "true")
    hook = AdvowareHook(redis_url=redis_url)
    try:
        with pytest.raises(WriteProtectedError):
            hook.get_conn().create_termin({"kuerzel": "AB", "datum": "2026-03-02T10:00:00"})
        assert hook.get_conn().list_mitarbeiter() == []
    finally:
        hook.close()
    assert httpx.get(f"{advoware_url}/_sandbox/stats").json()["total_writes"] == 0
