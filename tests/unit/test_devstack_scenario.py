"""`make scenario` on a running stack whose services are slow to answer (a loaded machine, Airflow's
SQLite busy) waits for them instead of failing on the first probe; a stopped service fails at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack import demo as devstack_demo
from devstack import stack as stack_mod
from devstack.stack import Service, Stack


@dataclass
class _SlowStack(Stack):
    """Every service runs; Airflow's health answers only from its `busy_for`-th probe on."""

    busy_for: int = 3
    alive: bool = True
    probes: dict[str, int] = field(default_factory=dict)

    def services(self) -> list[Service]:
        return [Service(n, [], {}, [f"http://{n}/health"], []) for n in ("sandbox", "gateway", "airflow")]

    def running(self, name: str) -> Any:
        return object() if self.alive else None

    def healthy(self, url: str, timeout_s: float = 2.0) -> bool:  # type: ignore[override]
        self.probes[url] = self.probes.get(url, 0) + 1
        return "airflow" not in url or self.probes[url] > self.busy_for


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ran: list[str] = []
    monkeypatch.setattr(devstack_demo, "run_party_part", lambda *a, **k: ran.append("parties"))
    monkeypatch.setattr(devstack_demo, "run_calendar_part", lambda *a, **k: ran.append("calendar"))
    monkeypatch.setattr(stack_mod.time, "sleep", lambda s: None)  # the waits are probes, not time
    return ran


def _settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    from include.settings import get_settings

    monkeypatch.setenv("SANDBOX_MODE", "true")
    get_settings.cache_clear()
    return get_settings()


def test_a_busy_airflow_is_waited_for_and_the_scenario_runs(monkeypatch: pytest.MonkeyPatch, parts: list[str]) -> None:
    said: list[str] = []
    st = _SlowStack(settings=_settings(monkeypatch))
    monkeypatch.setattr(st, "say", said.append)
    assert st.scenario() == 0
    assert parts == ["parties", "calendar"]
    assert st.probes["http://airflow/health"] == 4
    assert not any("not healthy" in line for line in said)


def test_a_stopped_stack_fails_at_once_and_says_so(monkeypatch: pytest.MonkeyPatch, parts: list[str]) -> None:
    said: list[str] = []
    st = _SlowStack(settings=_settings(monkeypatch), alive=False)
    monkeypatch.setattr(st, "say", said.append)
    assert st.scenario() == 1
    assert parts == [] and st.probes == {}
    assert any("not running or not healthy: sandbox, gateway, airflow" in line for line in said)
