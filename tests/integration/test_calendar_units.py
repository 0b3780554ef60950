"""Work units of a calendar run (include/calendar_sync/units.py) and the planning step's threads
(include/calendar_sync/planning_pool.py), without Airflow."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.calendar_sync.planning_pool import Abandoned, plan_in_threads, uninterrupted
from include.calendar_sync.units import MAX_LABEL, make_units

MAX_MAP_LENGTH = 1024  # Airflow's core.max_map_length default: a run must never need more


def _work(n: int) -> list[dict[str, Any]]:
    return [{"employee": f"E{i:04d}", "plan_id": i, "planning_error": None} for i in range(n)]


def _members(units: list[dict[str, Any]]) -> list[str]:
    return [w["employee"] for u in units for w in u["employees"]]


# -- shard boundaries --------------------------------------------------------------------------------
def test_nobody_with_work_makes_no_unit() -> None:
    assert make_units([], 16) == []


def test_one_employee_is_a_unit_named_by_its_kuerzel() -> None:
    (unit,) = make_units(_work(1), 16)
    assert unit["index"] == 0 and unit["label"] == "E0000" and _members([unit]) == ["E0000"]


def test_up_to_the_threshold_every_employee_has_a_unit_of_its_own() -> None:
    units = make_units(list(reversed(_work(16))), 16)
    assert [u["label"] for u in units] == [f"E{i:04d}" for i in range(16)]  # by Kürzel, one each
    assert [u["index"] for u in units] == list(range(16))


def test_one_past_the_threshold_two_employees_share_a_unit() -> None:
    units = make_units(_work(17), 16)
    assert len(units) == 16
    assert [len(u["employees"]) for u in units] == [2] + [1] * 15
    assert units[0]["label"] == "E0000 … E0001 (2 employees)" and units[1]["label"] == "E0002"


def test_more_employees_with_work_than_airflow_maps_fit_in_the_bounded_units() -> None:
    work = _work(1100)
    units = make_units(work, 16)
    assert len(units) == 16 < MAX_MAP_LENGTH
    assert sorted(len(u["employees"]) for u in units) == [68] * 4 + [69] * 12
    assert _members(units) == [w["employee"] for w in work]  # each exactly once, neighbours together
    assert units[0]["label"] == "E0000 … E0068 (69 employees)"
    assert units[-1]["label"] == "E1032 … E1099 (68 employees)"


@given(n=st.integers(0, 3000), max_units=st.integers(1, 128))
def test_units_cover_every_employee_once_in_balanced_bounded_units(n: int, max_units: int) -> None:
    work = _work(n)
    units = make_units(work, max_units)
    assert len(units) == min(n, max_units)
    sizes = [len(u["employees"]) for u in units]
    assert not sizes or max(sizes) - min(sizes) <= 1
    assert _members(units) == [w["employee"] for w in work]
    assert all(len(u["label"]) <= MAX_LABEL for u in units)
    assert [u["index"] for u in units] == list(range(len(units)))


def test_a_label_fits_airflows_map_index_column_whatever_the_kuerzel() -> None:
    units = make_units([{"employee": "X" * 400}, {"employee": "Y" * 400}, {"employee": "Z" * 400}], 1)
    assert len(units[0]["label"]) <= MAX_LABEL and units[0]["label"].endswith("(3 employees)")


# -- the planning step's threads -------------------------------------------------------------------
def _wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_slow_employee_is_given_up_and_holds_nobody_else() -> None:
    release = threading.Event()
    wrote: list[str] = []
    finished: list[str] = []

    def plan(employee: str) -> str:
        try:
            if employee == "SLOW":
                release.wait(30)  # a hung call
            with uninterrupted(final=True):  # saving the plan
                wrote.append(employee)
            return f"planned {employee}"
        finally:
            finished.append(employee)

    employees = ["A", "SLOW", *(f"E{i}" for i in range(20))]
    started = time.monotonic()
    result = plan_in_threads(employees, plan, threads=3, timeout_s=0.5)
    took = time.monotonic() - started
    assert result.timed_out == ["SLOW"] and result.not_started == []
    assert result.done == {e: f"planned {e}" for e in employees if e != "SLOW"}
    assert took < 10  # the hung call (30 s) was not waited for
    release.set()  # the call returns at last: the given-up employee writes nothing
    _wait_for(lambda: "SLOW" in finished)
    assert "SLOW" not in wrote and "SLOW" not in result.done


def test_threads_are_bounded() -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def plan(employee: str) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    result = plan_in_threads([f"E{i}" for i in range(40)], plan, threads=4, timeout_s=5)
    assert len(result.done) == 40 and peak == 4


def test_when_every_thread_is_held_the_rest_is_handed_on_unplanned() -> None:
    release = threading.Event()
    result = plan_in_threads([f"E{i}" for i in range(10)], lambda e: release.wait(30), threads=2, timeout_s=0.3)
    release.set()
    assert sorted(result.timed_out) == ["E0", "E1"]
    assert result.not_started == [f"E{i}" for i in range(2, 10)] and result.done == {}


def test_a_step_that_must_not_be_cut_is_waited_for_and_stands() -> None:
    """Provisioning or saving past the timeout: the employee is not given up in the middle of it, and
    once its plan is saved its outcome stands."""

    def plan(employee: str) -> str:
        with uninterrupted(final=True):
            time.sleep(0.6)  # longer than the timeout
        return "saved"

    result = plan_in_threads(["A"], plan, threads=1, timeout_s=0.2)
    assert result.done == {"A": "saved"} and result.timed_out == []


def test_a_given_up_employee_cannot_begin_a_step_that_writes() -> None:
    reached = threading.Event()
    outcome: list[str] = []

    def plan(employee: str) -> None:
        time.sleep(0.5)  # slower than the timeout, outside any step
        try:
            with uninterrupted():
                outcome.append("provisioned")
        except Abandoned:
            outcome.append("abandoned")
        reached.set()

    result = plan_in_threads(["A"], plan, threads=1, timeout_s=0.1)
    assert result.timed_out == ["A"]
    _wait_for(reached.is_set)
    assert outcome == ["abandoned"]


def test_outside_the_pool_a_step_is_just_run() -> None:
    with uninterrupted(final=True):
        pass
    with pytest.raises(ZeroDivisionError):
        with uninterrupted():
            1 / 0  # noqa: B018


# -- the planning step against the sandboxes -----------------------------------------------------------
def test_a_slow_employee_is_planned_by_its_unit_and_never_twice(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Any
) -> None:
    """Advoware answers one employee's listing only after 5 s; the planning gives that employee up
    after 1 s and plans the others; its unit's phase tasks plan and sync it; the given-up thread, when
    its call returns at last, writes nothing (no second plan, no second calendar)."""
    import psycopg

    from include.calendar_sync.phases import unit_phase
    from include.calendar_sync.planning import plan_employees
    from include.calendar_sync.prepare import RunParams
    from include.google_calendar.provisioning import calendar_summary
    from tests.calendar_helpers import faults, google_state, make_ctx, seed_firm

    def ctx() -> Any:
        return make_ctx(advoware_url, google_url, redis_url, hub, tmp_path, plan_employee_timeout_s=1)

    seed_firm(advoware_url, employees=3)
    planning = ctx()
    employees = sorted(m["kuerzel"] for m in planning.advoware.list_mitarbeiter())
    slow = employees[0]
    faults(advoware_url, {"match": "Termine.list", "kind": "timeout", "delay_s": 5, "count": 1, "principal": slow})
    units = plan_employees(planning, "run-slow", RunParams())
    planning.close()
    work = {w["employee"]: w for u in units for w in u["employees"]}
    assert sorted(work) == employees  # the first run: everybody has work
    assert work[slow]["plan_id"] is None and work[slow]["planning_error"] == "planning took over 1 s"
    assert all(work[e]["plan_id"] for e in employees if e != slow)

    (unit,) = [u for u in units if u["label"] == slow]
    for number in (1, 2, 3, 4):
        unit_phase(unit, number, "run-slow", RunParams(), ctx)

    def plan_row() -> Any:
        with psycopg.connect(hub) as conn:
            return conn.execute(
                "SELECT p.id, p.created_at, r.status FROM sync_plans p JOIN sync_runs r USING "
                "(run_id, employee) WHERE run_id = 'run-slow' AND employee = %s",
                (slow,),
            ).fetchone()

    synced = plan_row()
    assert synced is not None and synced[2] == "success"
    _wait_for(lambda: not any(t.name.startswith("plan-") for t in threading.enumerate()), 20)
    assert plan_row() == synced  # the given-up planning saved nothing when its answer came
    mine = [c for c in google_state(google_url)["calendars"] if c["summary"] == calendar_summary(slow)]
    assert len(mine) == 1
