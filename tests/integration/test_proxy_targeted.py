"""A write to appointments through the gateway's Advoware proxy starts the targeted run of the
appointment's employee (gateway in front of the Advoware sandbox, real hub and Redis, a fake Airflow
recording the runs). Reads, failed writes, other resources and the shared pool start nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from include.hub.db import connect
from include.settings import AirflowApiSettings, GatewaySettings, PushSettings, Settings
from sandbox.runner import ServerThread, free_port
from tests.advoware_helpers import sandbox_settings as advoware_settings
from tests.integration.test_airflow_api import PASSWORD, USER
from tests.integration.test_gateway_proxy import hub_settings
from tests.integration.test_google_push import runs_of, settle, wait_for_runs
from tests.push_helpers import fake_employee_dag_airflow
from webhook_gateway.app import create_app
from webhook_gateway.server import uvicorn_config

WRITE = "proxy-targeted-token"
TERMIN = {
    "kuerzel": "AB",
    "anwalt": "AB",
    "text": "Besprechung",
    "datum": "2026-03-02T10:00:00",
    "uhrzeitVon": "10:00:00",
    "datumBis": "2026-03-02T11:00:00",
    "uhrzeitBis": "11:00:00",
}


@pytest.fixture
def airflow() -> Iterator[FastAPI]:
    with fake_employee_dag_airflow() as app:
        yield app


@pytest.fixture
def gateway(airflow: FastAPI, advoware_url: str, redis_url: str, hub: str) -> Iterator[str]:
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        postgres=hub_settings(hub),
        advoware=advoware_settings(advoware_url),
        airflow_api=AirflowApiSettings(
            _env_file=None, url=airflow.state.url, username=USER, password=PASSWORD, timeout_s=5
        ),
        gateway=GatewaySettings(_env_file=None, api_token=WRITE),
        push=PushSettings(_env_file=None, debounce_s=0.3),
    )
    config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=free_port())
    with ServerThread(None, config=config) as server:
        yield server.url


def call(method: str, url: str, **kw: object) -> httpx.Response:
    return httpx.request(method, url, headers={"Authorization": f"Bearer {WRITE}"}, timeout=10, **kw)  # type: ignore[arg-type]


def employees_of_runs(airflow: FastAPI) -> list[str]:
    return sorted(r["conf"]["employee"] for r in runs_of(airflow))


def test_a_new_appointment_starts_its_employees_run(gateway: str, airflow: FastAPI) -> None:
    made = call("POST", f"{gateway}/api/advoware/Termine", json=TERMIN)
    assert made.status_code in (200, 201) and made.json()["frNr"]
    [run] = wait_for_runs(airflow, 1)
    assert run["conf"] == {"employee": "AB"} and run["dag_run_id"].startswith("proxy__AB__")


def test_an_update_moving_an_appointment_starts_both_employees_runs_and_a_delete_its_owners(
    gateway: str, airflow: FastAPI, hub: str
) -> None:
    frnr = call("POST", f"{gateway}/api/advoware/Termine", json=TERMIN).json()["frNr"]
    wait_for_runs(airflow, 1)
    settle(airflow, 1.0)
    with connect(hub) as conn:  # the sync linked it into AB's calendar
        conn.execute("INSERT INTO calendar_links (employee, frnr, google_event_id) VALUES ('AB', %s, 'ev1')", (frnr,))
    moved = call(
        "PUT",
        f"{gateway}/api/advoware/Termine",
        params={"frnr": frnr},
        json={**TERMIN, "kuerzel": "CD", "anwalt": "CD"},
    )
    assert moved.status_code == 200
    wait_for_runs(airflow, 3)
    assert employees_of_runs(airflow) == ["AB", "AB", "CD"]  # out of AB's calendar, into CD's
    settle(airflow, 1.0)
    gone = call("DELETE", f"{gateway}/api/advoware/Termine", params={"frnr": frnr})
    assert gone.status_code in (200, 204)
    wait_for_runs(airflow, 4)
    assert employees_of_runs(airflow) == ["AB", "AB", "AB", "CD"]  # the hub knows whose it was


def test_reads_failed_writes_other_resources_and_the_shared_pool_start_nothing(gateway: str, airflow: FastAPI) -> None:
    assert call("GET", f"{gateway}/api/advoware/Termine", params={"kuerzel": "AB"}).status_code == 200
    assert call("DELETE", f"{gateway}/api/advoware/Termine", params={"frnr": 987654}).status_code >= 400
    assert call(
        "POST", f"{gateway}/api/advoware/Termine", json={**TERMIN, "kuerzel": "ALLE", "anwalt": "ALLE"}
    ).status_code in (200, 201)
    assert settle(airflow, 1.5) == []
