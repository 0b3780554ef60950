"""`POST /webhooks/google/calendar`: Google's notifications against the hub's channels, on the real hub
and Redis, with a fake Airflow that records the targeted runs the gateway starts.

What a user checks: a forged, replayed, unknown, stopped or expired notification gets its precise 4xx
in the gateway's one error shape and starts no run; `sync` starts nothing; a burst of changes for one
employee starts exactly one targeted run, named by the employee, after the debounce; the metrics count
it all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from include.dag_ids import CALENDAR_EMPLOYEE_SYNC_DAG
from include.hub import channels
from include.hub.db import connect
from include.settings import AirflowApiSettings, GatewaySettings, PushSettings, Settings
from sandbox.runner import ServerThread, free_port
from tests.gateway_helpers import gateway_logs
from tests.integration.test_airflow_api import PASSWORD, USER
from tests.integration.test_gateway_proxy import hub_settings
from tests.push_helpers import fake_employee_dag_airflow
from webhook_gateway.app import create_app
from webhook_gateway.server import uvicorn_config

PATH = "/webhooks/google/calendar"
DEBOUNCE_S = 1.0
BURST_DEBOUNCE_S = 5.0


def settings_for(
    airflow_url: str, redis_url: str, hub: str, *, debounce_s: float = DEBOUNCE_S, runs_enabled: bool = True
) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=redis_url,
        postgres=hub_settings(hub),
        airflow_api=AirflowApiSettings(_env_file=None, url=airflow_url, username=USER, password=PASSWORD, timeout_s=5),
        gateway=GatewaySettings(_env_file=None, api_token="w-token"),
        push=PushSettings(_env_file=None, debounce_s=debounce_s, runs_enabled=runs_enabled),
    )


@pytest.fixture
def airflow() -> Iterator[FastAPI]:
    with fake_employee_dag_airflow() as app:
        yield app


@pytest.fixture
def gateway(airflow: FastAPI, redis_url: str, hub: str) -> Iterator[str]:
    settings = settings_for(airflow.state.url, redis_url, hub)
    config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=free_port())
    with ServerThread(None, config=config) as server:
        yield server.url


def add_channel(
    hub: str, channel_id: str, employee: str = "AB", *, expires_in_s: float = 3600, token: str | None = None
) -> dict[str, str]:
    """A channel as part A's lifecycle records it; returns the headers Google would send on it."""
    token = token or f"secret-{channel_id}"
    with connect(hub) as conn:
        channels.add(
            conn,
            channel_id=channel_id,
            employee=employee,
            calendar_id=f"cal-{employee}",
            resource_id=f"res-{channel_id}",
            token=token,
            address="https://gw.example" + PATH,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in_s),
        )
    return {
        "X-Goog-Channel-ID": channel_id,
        "X-Goog-Channel-Token": token,
        "X-Goog-Resource-ID": f"res-{channel_id}",
        "X-Goog-Resource-URI": "https://example/events",
        "X-Goog-Channel-Expiration": "Mon, 07 Dec 2026 10:00:00 GMT",
    }


def notify(url: str, headers: dict[str, str], state: str = "exists", number: int | None = 2) -> httpx.Response:
    extra = {"X-Goog-Resource-State": state}
    if number is not None:
        extra["X-Goog-Message-Number"] = str(number)
    return httpx.post(url + PATH, headers={**headers, **extra})  # Google's body is empty


def runs_of(airflow: FastAPI) -> list[dict[str, Any]]:
    return [r for (dag, _), r in airflow.state.runs.items() if dag == CALENDAR_EMPLOYEE_SYNC_DAG]


def wait_for_runs(airflow: FastAPI, count: int, deadline_s: float = 10.0) -> list[dict[str, Any]]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        runs = runs_of(airflow)
        if len(runs) >= count:
            return runs
        time.sleep(0.05)
    raise AssertionError(f"{count} targeted run(s) expected, {len(runs_of(airflow))} started")


def settle(airflow: FastAPI, wait_s: float = DEBOUNCE_S * 2.5) -> list[dict[str, Any]]:
    """The runs once the debounce is well over (for checks that nothing more starts)."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        time.sleep(0.05)
    return runs_of(airflow)


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        re.compile(rf"^{name}(?:\{{{re.escape(want)}\}})? ([0-9.e+]+)$", re.M)
        if want
        else re.compile(rf"^{name} ([0-9.e+]+)$", re.M)
    )
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0


def assert_error(answer: httpx.Response, status: int, code: str) -> None:
    body = answer.json()
    assert answer.status_code == status, body
    assert set(body) >= {"error", "message", "status", "request_id"}
    assert (body["error"], body["status"]) == (code, status)
    assert body["request_id"] == answer.headers["x-request-id"]


# -- the checks ------------------------------------------------------------------------------------------
def test_the_sync_message_is_answered_without_a_run(gateway: str, airflow: FastAPI, hub: str) -> None:
    headers = add_channel(hub, "ch-sync")
    answer = notify(gateway, headers, "sync", 1)
    assert answer.status_code == 200 and answer.json() == {
        "channel": "ch-sync",
        "state": "sync",
        "marked": False,
        "replay": False,
    }
    assert settle(airflow) == []
    with connect(hub) as conn:
        assert channels.get(conn, "ch-sync").last_message_number == 1  # type: ignore[union-attr]


def test_a_change_starts_one_targeted_run_named_by_the_employee(gateway: str, airflow: FastAPI, hub: str) -> None:
    headers = add_channel(hub, "ch-1", "AB")
    started = time.monotonic()
    answer = notify(gateway, headers, "exists", 2)
    assert answer.status_code == 200 and answer.json()["marked"] is True
    [run] = wait_for_runs(airflow, 1)
    assert time.monotonic() - started >= DEBOUNCE_S * 0.9  # the debounce was waited for
    assert run["conf"] == {"employee": "AB"} and run["dag_run_id"].startswith("push__AB__")
    assert settle(airflow) == [run]
    with connect(hub) as conn:
        seen = channels.get(conn, "ch-1")
    assert seen is not None and seen.last_message_number == 2 and seen.last_notification_at is not None


@pytest.fixture
def slow_gateway(airflow: FastAPI, redis_url: str, hub: str) -> Iterator[str]:
    """A debounce long enough for a burst of requests on a loaded machine."""
    settings = settings_for(airflow.state.url, redis_url, hub, debounce_s=BURST_DEBOUNCE_S)
    config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=free_port())
    with ServerThread(None, config=config) as server:
        yield server.url


def test_a_burst_for_one_employee_is_one_run_and_two_employees_are_two(
    slow_gateway: str, airflow: FastAPI, hub: str
) -> None:
    gateway = slow_gateway
    ab, cd = add_channel(hub, "ch-ab", "AB"), add_channel(hub, "ch-cd", "CD")
    names = [
        ("vmh_targeted_runs_coalesced_total", "source", "push"),
        ("vmh_targeted_runs_started_total", "source", "push"),
        ("vmh_google_push_received_total", "state", "exists"),
    ]
    before = [metric(gateway, n, **{k: v}) for n, k, v in names]
    replayed = metric(gateway, "vmh_google_push_replayed_total")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=11) as pool:  # Google sends a burst at once, not one by one
        answers = list(
            pool.map(
                lambda args: notify(gateway, *args), [(ab, "exists", n) for n in range(2, 12)] + [(cd, "exists", 2)]
            )
        )
    assert time.monotonic() - started < BURST_DEBOUNCE_S, "the burst took longer than the debounce: not a burst"
    assert [a.status_code for a in answers] == [200] * 11
    runs = wait_for_runs(airflow, 2, deadline_s=BURST_DEBOUNCE_S + 10)
    assert sorted(r["conf"]["employee"] for r in settle(airflow)) == ["AB", "CD"]
    assert len(runs) == 2
    after = [metric(gateway, n, **{k: v}) for n, k, v in names]
    coalesced, started_runs, received = (a - b for a, b in zip(after, before, strict=True))
    # sent at once, a lower message number may be checked after a higher one: a late message, not news
    late = metric(gateway, "vmh_google_push_replayed_total") - replayed
    assert (coalesced + late, started_runs, received) == (9, 2, 11)
    # after the run was started, a new change is a new run
    assert notify(gateway, ab, "exists", 20).status_code == 200
    wait_for_runs(airflow, 3, deadline_s=BURST_DEBOUNCE_S + 10)


def test_a_replayed_message_number_is_accepted_without_a_second_mark(gateway: str, airflow: FastAPI, hub: str) -> None:
    headers = add_channel(hub, "ch-r")
    replayed = metric(gateway, "vmh_google_push_replayed_total")
    assert notify(gateway, headers, "exists", 5).json()["marked"] is True
    wait_for_runs(airflow, 1)
    for number in (5, 4):  # Google repeats a message; an older one arrives late
        again = notify(gateway, headers, "exists", number)
        assert again.status_code == 200 and again.json() == {
            "channel": "ch-r",
            "state": "exists",
            "marked": False,
            "replay": True,
        }
    assert len(settle(airflow)) == 1
    assert metric(gateway, "vmh_google_push_replayed_total") - replayed == 2


@pytest.mark.parametrize(
    "case",
    [
        "unknown",
        "forged",
        "no_token",
        "other_resource",
        "stopped",
        "expired",
        "no_state",
        "odd_state",
        "odd_number",
        "no_channel",
    ],
)
def test_a_notification_that_can_never_be_valid_gets_its_4xx_and_starts_nothing(
    gateway: str, airflow: FastAPI, hub: str, case: str
) -> None:
    headers = add_channel(hub, "ch-x", expires_in_s=-5 if case == "expired" else 3600)
    state, number = "exists", "3"
    expected = {
        "unknown": (404, "unknown_channel"),
        "forged": (403, "bad_token"),
        "no_token": (403, "bad_token"),
        "other_resource": (403, "resource_mismatch"),
        "stopped": (410, "channel_stopped"),
        "expired": (410, "channel_expired"),
        "no_state": (400, "missing_header"),
        "odd_state": (400, "unknown_state"),
        "odd_number": (400, "bad_message_number"),
        "no_channel": (400, "missing_header"),
    }[case]
    if case == "unknown":
        headers["X-Goog-Channel-ID"] = "ch-nobody-made"
    elif case == "forged":
        headers["X-Goog-Channel-Token"] = "secret-ch-y"  # a real channel's token shape, not this one's
    elif case == "no_token":
        del headers["X-Goog-Channel-Token"]
    elif case == "other_resource":
        headers["X-Goog-Resource-ID"] = "res-other"
    elif case == "stopped":
        with connect(hub) as conn:
            channels.stop(conn, "ch-x", "renewed")
    elif case == "odd_state":
        state = "deleted"
    elif case == "odd_number":
        number = "3a"
    elif case == "no_channel":
        del headers["X-Goog-Channel-ID"]
    sent = {**headers, "X-Goog-Message-Number": number}
    if case != "no_state":
        sent["X-Goog-Resource-State"] = state
    rejected = metric(gateway, "vmh_google_push_rejected_total", reason=expected[1])
    with gateway_logs() as logs:
        answer = httpx.post(gateway + PATH, headers=sent)
    assert_error(answer, *expected)
    assert metric(gateway, "vmh_google_push_rejected_total", reason=expected[1]) - rejected == 1
    assert settle(airflow) == []
    with connect(hub) as conn:
        assert channels.get(conn, "ch-x").last_message_number is None  # type: ignore[union-attr]
    assert not any("secret-ch" in line for line in logs.lines())  # a token is never logged


def test_with_runs_switched_off_a_change_is_checked_and_counted_but_starts_nothing(
    airflow: FastAPI, redis_url: str, hub: str
) -> None:
    settings = settings_for(airflow.state.url, redis_url, hub, runs_enabled=False)
    config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=free_port())
    with ServerThread(None, config=config) as server:
        headers = add_channel(hub, "ch-off")
        answer = notify(server.url, headers, "exists", 2)
        assert answer.status_code == 200 and answer.json()["marked"] is False
        assert_error(notify(server.url, {**headers, "X-Goog-Channel-Token": "x"}), 403, "bad_token")
        assert settle(airflow) == []


def test_a_mark_left_pending_by_a_stopped_gateway_becomes_a_run_at_the_next_start(
    airflow: FastAPI, redis_url: str, hub: str
) -> None:
    headers = add_channel(hub, "ch-p")
    settings = settings_for(airflow.state.url, redis_url, hub, debounce_s=30)  # far longer than this gateway lives
    config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=free_port())
    with ServerThread(None, config=config) as server:
        assert notify(server.url, headers, "exists", 2).json()["marked"] is True
    assert runs_of(airflow) == []
    import redis

    redis.Redis.from_url(redis_url).zadd("push:pending", {"AB": time.time()})  # its time has come
    settings = settings_for(airflow.state.url, redis_url, hub)
    config = uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=free_port())
    with ServerThread(None, config=config):
        [run] = wait_for_runs(airflow, 1)
    assert run["conf"] == {"employee": "AB"}


def test_airflow_refusing_a_trigger_is_retried_until_it_takes_it(gateway: str, airflow: FastAPI, hub: str) -> None:
    airflow.state.fail_next = 1
    headers = add_channel(hub, "ch-f")
    assert notify(gateway, headers, "exists", 2).status_code == 200
    [run] = wait_for_runs(airflow, 1, deadline_s=15)
    assert run["conf"] == {"employee": "AB"}


def test_a_trigger_that_timed_out_is_retried_with_the_same_run_id(redis_url: str, hub: str) -> None:
    """A POST that timed out may have landed in Airflow: its retry must find that run, not start another."""
    import asyncio

    from include.airflow_api import TriggerResult
    from webhook_gateway.targeted_runs import TargetedRuns

    class LateAirflow:  # the first answer never arrives in time; the run was created all the same
        def __init__(self) -> None:
            self.run_ids: list[str] = []

        async def trigger(self, dag_id: str, conf: dict[str, Any], run_id: str, note: str) -> TriggerResult:
            self.run_ids.append(run_id)
            if len(self.run_ids) == 1:
                raise TimeoutError
            return TriggerResult(run_id, False, None)  # Airflow's 409: that run exists

        async def aclose(self) -> None:
            pass

    late = LateAirflow()

    async def scenario() -> None:
        runs = TargetedRuns(settings_for("http://127.0.0.1:9", redis_url, hub, debounce_s=0), airflow=late)  # type: ignore[arg-type]
        try:
            await runs.mark("AB", "push")
            deadline = time.monotonic() + 15
            while len(late.run_ids) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await runs.close()

    asyncio.run(scenario())
    assert len(late.run_ids) == 2 and late.run_ids[0] == late.run_ids[1]
