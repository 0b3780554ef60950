"""The whole chain on the sandboxes: the channel lifecycle opens a watch channel per calendar, the Google
sandbox delivers its notifications (as Google does: asynchronously, headers only) to the real gateway,
which starts targeted runs in a fake Airflow; the runs are played here with the targeted run's own code.
A person's edit in Google becomes one run that carries it to Advoware; the notifications of that run's
own writes start a run that writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from include.calendar_push.channels import ChannelKeeper
from include.calendar_sync.context import SyncContext
from include.calendar_sync.runner import sync_all
from include.calendar_sync.targeted import sync_targeted
from include.hub import channels as hub_channels
from include.settings import GatewaySettings, GoogleSettings
from sandbox.runner import ServerThread, free_port
from tests.calendar_helpers import calendar_ids, make_ctx, seed_firm, termine, total_writes
from tests.integration.test_google_push import metric, runs_of, settings_for
from tests.integration.test_proxy_targeted import airflow  # noqa: F401  (fixture)
from tests.push_helpers import wait_for
from webhook_gateway.app import create_app
from webhook_gateway.server import uvicorn_config

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> Iterator[SyncContext]:
    c = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    yield c
    c.close()


@pytest.fixture
def gateway(airflow: FastAPI, redis_url: str, hub: str) -> Iterator[str]:  # noqa: F811
    settings = settings_for(airflow.state.url, redis_url, hub, debounce_s=0.5)
    config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=free_port())
    with ServerThread(None, config=config) as server:
        yield server.url


def open_channels(ctx: SyncContext, gateway: str) -> None:
    google = GoogleSettings(**{**ctx.settings.google.model_dump(), "push_enabled": True})
    settings = ctx.settings.model_copy(
        update={"gateway": GatewaySettings(_env_file=None, public_url=gateway), "google": google}
    )
    ChannelKeeper(ctx.google, ctx.hub, settings).maintain()


def person_adds_event(ctx: SyncContext, employee: str, title: str) -> None:
    with ctx.hub.transaction() as conn:
        email = conn.execute("SELECT email FROM employee_calendars WHERE employee = %s", (employee,)).fetchone()
    session, calendar_id = ctx.google.session_for(email["email"]), calendar_ids(ctx.hub_dsn)[employee]
    day = (date.today() + timedelta(days=4)).isoformat()
    body = {
        "summary": title,
        "start": {"dateTime": f"{day}T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{day}T10:00:00", "timeZone": "Europe/Berlin"},
    }
    session.request(lambda s: s.events().insert(calendarId=calendar_id, body=body)).execute()


def quiet(google_url: str, redis_url: str, gateway: str) -> None:
    """Every notification delivered, no mark pending, every mark's run started (sandbox, Redis, metrics)."""
    import httpx
    import redis

    r = redis.Redis.from_url(redis_url)

    def done() -> bool:
        return (
            httpx.get(f"{google_url}/_sandbox/push", timeout=10).json()["queued"] == 0
            and r.zcard("push:pending") == 0
            and metric(gateway, "vmh_targeted_runs_started_total", source="push")
            >= metric(gateway, "vmh_targeted_runs_marked_total", source="push")
        )

    wait_for(done, what="quiet")


def employee_runs(airflow: FastAPI, employee: str) -> list[dict[str, Any]]:  # noqa: F811
    return [r for r in runs_of(airflow) if r["conf"] == {"employee": employee}]


def test_a_google_edit_travels_as_one_run_and_its_echo_writes_nothing(
    ctx: SyncContext,
    gateway: str,
    airflow: FastAPI,  # noqa: F811
    advoware_url: str,
    google_url: str,
    hub: str,
    redis_url: str,
) -> None:
    seed_firm(advoware_url)
    sync_all(ctx)
    open_channels(ctx, gateway)
    employees = sorted(calendar_ids(hub))
    with ctx.hub.transaction() as conn:  # Google's first message on every channel arrived and was checked
        wait_for(
            lambda: (
                all(c.last_message_number is not None for c in hub_channels.active(conn))
                and len(hub_channels.active(conn)) == len(employees)
            ),
            what="the sync messages",
        )
    assert runs_of(airflow) == []  # `sync` starts nothing

    ab = employees[0]
    person_adds_event(ctx, ab, "Vom Handy")
    [run] = wait_for(lambda: employee_runs(airflow, ab), what="a targeted run for the edited calendar")
    assert run["dag_run_id"].startswith(f"push__{ab}__")
    sync_targeted(ctx, run["dag_run_id"], ab)  # what the run's task does
    assert any(t.get("text") == "Vom Handy" for t in termine(advoware_url, ab))

    # the run's own writes to Google (if any) are notified too; each run they start writes nothing
    writes = (total_writes(advoware_url), total_writes(google_url))
    played = {run["dag_run_id"]}
    for _ in range(3):
        quiet(google_url, redis_url, gateway)
        echoes = [r for r in employee_runs(airflow, ab) if r["dag_run_id"] not in played]
        for echo in echoes:
            assert sync_targeted(ctx, echo["dag_run_id"], ab)["status"] == "success"
            played.add(echo["dag_run_id"])
        if not echoes:
            break
    assert (total_writes(advoware_url), total_writes(google_url)) == writes
    assert {r["conf"]["employee"] for r in runs_of(airflow)} == {ab}  # nobody else was woken
