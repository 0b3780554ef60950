"""The Airflow connection google_calendar_default becomes a working Google Calendar client."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from include.calendar_sync.calendars import provision
from include.google_calendar.provisioning import calendar_summary
from include.hub.db import Hub
from sandbox.keys import write_service_account_file


@pytest.mark.parametrize("how", ["keyfile_dict", "key_path"])
def test_connection_key_and_extras_reach_the_sandbox(
    how: str, google_url: str, redis_url: str, hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "sa.json"
    info = write_service_account_file(key, f"{google_url}/token")
    extra = {
        "scope": "https://www.googleapis.com/auth/calendar",
        "delegation": True,
        "api_endpoint": f"{google_url}/calendar/v3/",
        "batch_uri": f"{google_url}/batch/calendar/v3",
        "token_uri": f"{google_url}/token",
    }
    extra[how] = json.dumps(info) if how == "keyfile_dict" else str(key)
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CALENDAR_DEFAULT", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    from include.airflow_provider.hooks.google_calendar import GoogleCalendarSyncHook

    client = GoogleCalendarSyncHook(redis_url=redis_url).get_conn()
    assert client.delegated and client.account.email == info["client_email"]

    with Hub(hub) as unit:
        result = provision(client, unit, "AB", "ab@kanzlei.example")

    state = httpx.get(f"{google_url}/_sandbox/state", timeout=10).json()
    (cal,) = [c for c in state["calendars"] if c["summary"] == calendar_summary("AB")]
    assert cal["id"] == result.calendar_id and cal["owner"] == "ab@kanzlei.example"  # delegated
