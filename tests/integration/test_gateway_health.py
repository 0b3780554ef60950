"""`GET /healthz/deep`: the connection check over HTTP, behind either gateway token, 200 or 503 with the
same verdicts as `kanzlei-sync check`, in the gateway's error format when something failed."""

from __future__ import annotations

from fastapi.testclient import TestClient

from include.checks.run import run_all
from include.settings import AirflowApiSettings, GatewaySettings, Settings
from sandbox.runner import free_port
from tests.integration.test_check import _postgres
from webhook_gateway.app import create_app

WRITE, READ = "health-write-token", "health-read-token"


def _settings(hub: str, redis_url: str) -> Settings:
    return Settings(
        _env_file=None,
        sandbox_mode=True,
        redis_url=redis_url,
        postgres=_postgres(hub),
        airflow_api=AirflowApiSettings(_env_file=None, url=f"http://127.0.0.1:{free_port()}"),
        gateway=GatewaySettings(_env_file=None, api_token=WRITE, read_token=READ),
    )


def test_deep_health_needs_a_token_and_reports_the_checks(hub: str, redis_url: str) -> None:
    settings = _settings(hub, redis_url)
    with TestClient(create_app(settings)) as client:
        anonymous = client.get("/healthz/deep")
        assert anonymous.status_code == 401
        assert set(anonymous.json()) >= {"error", "message", "status", "request_id"}
        assert client.get("/healthz/deep", headers={"Authorization": "Bearer wrong"}).status_code == 403

        fine = client.get(
            "/healthz/deep", params={"service": ["hub", "redis"]}, headers={"Authorization": f"Bearer {READ}"}
        )
        assert fine.status_code == 200, fine.text
        assert fine.json()["ok"] is True
        assert [v["service"] for v in fine.json()["verdicts"]] == ["hub", "redis", "redis", "redis"]

        down = client.get(
            "/healthz/deep", params={"service": ["hub", "airflow"]}, headers={"Authorization": f"Bearer {WRITE}"}
        )
        assert down.status_code == 503
        body = down.json()
        assert body["error"] == "check_failed" and body["message"] == "1 checks failed: airflow"
        assert body["verdicts"] == [v.as_dict() for v in run_all(settings, only=["hub", "airflow"])]
        assert WRITE not in down.text and READ not in down.text
