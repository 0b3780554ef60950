"""The sync status view in a real browser: Debian's Chromium (headless, driven by Playwright for Python)
against a real Airflow 3 on free ports (`python -m devstack up`, as `make demo`).

Scenario: after the stack's first scheduled calendar run, a calendar run in which Google refuses the insert
of one employee's new appointment (parked at once: SYNC_CALENDAR_MAX_ATTEMPTS=1; the other employees have
nothing to do and are closed in plan_employees), and two parties created by a
CRM user, one of which Advoware refuses once (a dead letter at once: SYNC_PARTY_MAX_ATTEMPTS=1). Then a
person logs into the Airflow UI at 1280 × 800, opens Browse → Sync status and reads: the employees' rows
(each linked to its latest task instance log, followed for two of them), the last party run, the 7-day
charts, the open dead letters; the page fits the frame. They replay the party dead letter and the parked
calendar item; the test checks the effect (the letters replayed in the hub, the runs triggered and
finished, the party in Advoware, the item in Google). Screenshots go to the test's tmp dir and to
`test-output/status-view/` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import psycopg
import pytest

from include.airflow_api import AirflowApi
from tests.conftest import pg_dsn
from tests.e2e.test_demo_stack import ROOT, devstack
from tests.e2e.test_party_idle import _env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
CHROMIUM = "/usr/bin/chromium"
# Headless, as root, offline: no sandbox (root), and none of Chromium's own calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CAL, PARTY = "advoware_calendar_sync", "beteiligte_sync"
OUTPUT = ROOT / "test-output" / "status-view"


def poll(what: str, fn: Callable[[], Any], timeout_s: float, interval_s: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}: {value!r}"
        time.sleep(interval_s)


def rows(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(sql, args).fetchall()


def run_done(api: AirflowApi, dag_id: str, run_id: str, timeout_s: float = 300) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        try:
            run = api.get_run(dag_id, run_id)
        except Exception:  # not created yet / busy SQLite
            return None
        return run if run["state"] in ("success", "failed") else None

    run = poll(f"{dag_id} run {run_id}", finished, timeout_s)
    assert run["state"] == "success", run
    return run


def sandbox_faults(url: str, *specs: dict[str, Any]) -> None:
    httpx.post(f"{url}/_sandbox/faults", json={"clear": True, "faults": list(specs)}, timeout=10).raise_for_status()


def play_scenario(env: dict[str, str], api: AirflowApi) -> dict[str, Any]:
    """Calendar and party runs leaving one parked calendar item and one party dead letter."""
    hub = pg_dsn(env["POSTGRES_DB"])
    google = env["GOOGLE_API_ENDPOINT"].split("/calendar/")[0]
    advoware, espo = env["ADVOWARE_BASE_URL"], env["ESPOCRM_BASE_URL"]

    # the stack's first scheduled run (catchup=False) creates the firm's appointments in Google first
    poll(
        "the first scheduled calendar run",
        lambda: [
            r for r in api.list_runs(CAL)[0] if r["run_type"] == "scheduled" and r["state"] in ("success", "failed")
        ],
        420,
    )
    employees = [r["employee"] for r in rows(hub, "SELECT employee FROM employee_calendars ORDER BY employee")]
    assert len(employees) == 4
    # a new appointment of one employee, which Google refuses once: parked at once
    parked_employee, day = employees[0], time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    termin = {
        "frNr": 990001,
        "text": "E2E Termin",
        "notiz": "",
        "ort": "",
        "kuerzel": parked_employee,
        "anwalt": parked_employee,
        "datum": f"{day}T10:00:00",
        "uhrzeitVon": "10:00:00",
        "datumBis": f"{day}T11:00:00",
        "uhrzeitBis": "11:00:00",
        "abwesenheit": 0,
        "privat": 0,
        "dauertermin": 0,
        "turnus": 0,
        "turnusArt": 0,
        "erinnerung": 0,
        "erinnerungsDatum": None,
        "nr": None,
        "azRubrum": "",
        "zuletztGeaendertAm": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
    }
    httpx.post(f"{advoware}/_sandbox/seed", json={"termine": [termin]}, timeout=10).raise_for_status()
    sandbox_faults(google, {"match": "events.insert", "kind": "status", "status": 400, "reason": "invalid", "count": 1})
    api.trigger(CAL, {}, dag_run_id="e2e_calendar")
    run_done(api, CAL, "e2e_calendar", 420)
    sandbox_faults(google)
    (parked,) = rows(hub, "SELECT id, entity_id, payload FROM dead_letters WHERE source = 'calendar_sync'")
    assert parked["payload"] == {
        "employee": parked_employee,
        "frnr": 990001,
        "action": "create_google",
        "google_event_id": parked["payload"]["google_event_id"],
    }
    quiet = employees[1]  # nothing to do in that run: closed in plan_employees

    # Advoware refuses the next party create once; a CRM user creates two parties (webhooks -> gateway -> DAG)
    sandbox_faults(advoware, {"match": "Beteiligte.create", "kind": "status", "status": 400, "count": 1})
    created = [
        httpx.post(f"{espo}/_sandbox/user/CBeteiligte", json={"name": f"E2E Partei {n}"}, timeout=10).json()["id"]
        for n in (1, 2)
    ]
    dead = poll(
        "a party dead letter",
        lambda: rows(hub, "SELECT id, entity_id FROM dead_letters WHERE source = 'beteiligte_sync'"),
        300,
    )
    linked = poll(
        "the other party linked",
        lambda: rows(hub, "SELECT espo_id FROM party_links WHERE espo_id = ANY(%s) AND status = 'linked'", created),
        300,
    )
    assert {dead[0]["entity_id"], linked[0]["espo_id"]} == set(created)
    poll(
        "the party run row closed",
        lambda: rows(hub, "SELECT 1 FROM sync_runs WHERE kind = 'beteiligte' AND status <> 'running'"),
        120,
    )
    sandbox_faults(advoware)
    return {
        "hub": hub,
        "parked": parked,
        "parked_employee": parked_employee,
        "quiet": quiet,
        "employees": employees,
        "party_letter": dead[0],
        "party_ok": linked[0]["espo_id"],
    }


class Browser:
    """One Chromium (fresh profile) and one page at 1280 × 800; screenshots into `out` and OUTPUT."""

    def __init__(self, out: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.out = out
        self._pw = sync_playwright().start()
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.context = self._pw.chromium.launch_persistent_context(
            self.profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
            timezone_id="UTC",
            locale="en-US",
        )
        self.context.set_default_timeout(60_000)
        self.page = self.context.new_page()
        self.shots: list[Path] = []

    def shot(self, name: str, **kw: Any) -> None:
        path = self.out / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), **kw)
        self.shots.append(path)

    def close(self) -> None:
        try:
            self.context.close()
            self._pw.stop()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def login(b: Browser, af: str, password: str) -> None:
    page = b.page
    page.goto(f"{af}/")
    page.wait_for_url(re.compile(r".*/auth/login.*"))
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url)


def open_status_view(b: Browser, af: str) -> Any:
    """Browse -> Sync status in the UI's navigation; the view is the iframe of /plugin/sync-status."""
    page = b.page
    page.goto(f"{af}/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Sync status").click()
    page.wait_for_url(re.compile(r".*/plugin/sync-status$"))
    frame = page.frame_locator("iframe")
    frame.locator("h1", has_text="Sync status").wait_for()
    return frame


def table_rows(frame: Any, table_id: str) -> list[list[str]]:
    return frame.locator(f"table#{table_id} tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.innerText.trim()))"
    )


@pytest.fixture
def stack(tmp_path: Path, redis_url: str) -> Iterator[dict[str, str]]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (.ci/run installs it)")
    hub_db = f"hub_browser_{uuid.uuid4().hex[:10]}"
    env = _env(tmp_path, hub_db, redis_url)
    env.update(
        {
            "SYNC_CALENDAR_MAX_ATTEMPTS": "1",
            "SYNC_PARTY_MAX_ATTEMPTS": "1",
            "BETEILIGTE_SYNC_SCHEDULE": "0 0 1 1 *",
            "CALENDAR_SYNC_RETRY_DELAY_S": "5",
        }
    )
    try:
        up = devstack("up --timeout 300", env, timeout=360)
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        yield env
    finally:
        devstack("down", env, timeout=180)
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{hub_db}" WITH (FORCE)')


def test_status_view_in_chromium_shows_the_state_and_replays_dead_letters(
    stack: dict[str, str], tmp_path: Path
) -> None:
    env = stack
    af = env["AIRFLOW_API_URL"]
    api = AirflowApi(af, "admin", env["AIRFLOW_API_PASSWORD"], timeout_s=30)
    s = play_scenario(env, api)
    hub = s["hub"]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    b = Browser(shots)
    try:
        login(b, af, env["AIRFLOW_API_PASSWORD"])
        frame = open_status_view(b, af)
        check_page(b, frame, s)
        check_log_links(b, af, s)

        # replay the party dead letter: its id goes back into the queue, a beteiligte_sync run takes it
        frame = open_status_view(b, af)
        letter = s["party_letter"]
        frame.locator(f"button[name=replay][value='{letter['id']}']").click()
        notice = frame.locator("#notice")
        notice.wait_for()
        assert f"Dead letter {letter['id']} (beteiligte_sync" in notice.inner_text()
        assert "replayed at" in notice.inner_text() and f"replay__beteiligte__{letter['id']}" in notice.inner_text()
        b.shot("party-dead-letter-replayed", full_page=True)
        assert rows(hub, "SELECT replayed_at FROM dead_letters WHERE id = %s", letter["id"])[0]["replayed_at"]
        run = run_done(api, PARTY, f"replay__beteiligte__{letter['id']}")
        assert run["triggering_user_name"] == "admin"
        poll(
            "the replayed party linked",
            lambda: rows(
                hub, "SELECT 1 FROM party_links WHERE espo_id = %s AND status = 'linked'", letter["entity_id"]
            ),
            60,
        )

        # replay the parked calendar item: released, and a calendar run for its employee carries it to Google
        parked = s["parked"]
        frame.locator(f"button[name=replay][value='{parked['id']}']").click()
        frame.locator("#notice", has_text=f"Dead letter {parked['id']} (calendar_sync").wait_for()
        run = run_done(api, CAL, f"replay__calendar__{parked['id']}", 420)
        assert run["conf"]["employees"] == [s["parked_employee"]]
        frnr = parked["payload"]["frnr"]
        assert rows(
            hub, "SELECT status FROM calendar_links WHERE employee = %s AND frnr = %s", s["parked_employee"], frnr
        ) == [{"status": "linked"}]
        frame = open_status_view(b, af)
        assert frame.locator("#dead-letters-open").inner_text() == "Open dead letters: 0"
        b.shot("after-both-replays", full_page=True)
    finally:
        b.close()
        api.close()
        OUTPUT.mkdir(parents=True, exist_ok=True)
        for path in b.shots:
            shutil.copy(path, OUTPUT / path.name)


def check_page(b: Browser, frame: Any, s: dict[str, Any]) -> None:
    """What a person reads: the employees, the party run, the charts, the dead letters; and that it fits."""
    b.shot("status-view")
    employees = table_rows(frame, "employees")
    assert [r[0] for r in employees] == sorted(s["employees"])
    by_code = {r[0]: r for r in employees}
    for code in s["employees"]:
        row = by_code[code]
        assert row[8].startswith("success") and row[8].endswith("log"), row  # last run, with its log link
        assert row[9].split("\n")[0].endswith(" UTC"), row  # run time
        assert int(row[3]) >= 20, row  # linked: the seeded appointments
    assert int(by_code[s["parked_employee"]][5]) == 1  # links 'failed': the parked one
    assert "google.parked 1" in by_code[s["parked_employee"]][10].replace("\xa0", " ")

    # the last party run, as the hub's run log has it (run id of the Airflow run, the drain's counts)
    (last,) = rows(
        s["hub"],
        "SELECT run_id, counts, started_at FROM sync_runs WHERE kind = 'beteiligte' ORDER BY started_at DESC LIMIT 1",
    )
    (party_run,) = table_rows(frame, "party-run")
    assert party_run[:2] == [last["run_id"], "success"], party_run
    assert party_run[2].split("\n")[0] == last["started_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert [int(x) for x in party_run[4:10]] == [
        last["counts"].get(k, 0) for k in ("claimed", "acked", "requeued", "retried", "dead", "advoware_writes")
    ]
    every = rows(s["hub"], "SELECT counts FROM sync_runs WHERE kind = 'beteiligte'")
    assert last["counts"]["claimed"] >= 1 and sum(int(r["counts"].get("dead", 0)) for r in every) == 1

    letters = {int(r[0]): r for r in table_rows(frame, "dead-letters")}
    assert set(letters) == {s["parked"]["id"], s["party_letter"]["id"]}
    assert letters[s["party_letter"]["id"]][2] == s["party_letter"]["entity_id"]
    assert letters[s["parked"]["id"]][2] == s["parked"]["entity_id"]
    assert all(r[6] == "Replay" for r in letters.values())

    today = time.strftime("%Y-%m-%d", time.gmtime())
    bar = frame.locator(f"#chart-calendar rect[data-series=google_writes][data-day='{today}']")
    assert int(bar.get_attribute("data-value")) >= 20  # the firm's appointments went to Google today
    assert (
        int(frame.locator(f"#chart-calendar rect[data-series=parked][data-day='{today}']").get_attribute("data-value"))
        == 1
    )
    assert (
        int(frame.locator(f"#chart-parties rect[data-series=dead][data-day='{today}']").get_attribute("data-value"))
        == 1
    )

    # fits 1280 px: the frame inside the window, nothing wider than the frame, the error columns inside it
    box = b.page.locator("iframe").bounding_box()
    assert box and box["x"] + box["width"] <= 1280, box
    fit = frame.locator("body").evaluate(
        "body => ({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,"
        " right: Math.max(...[...document.querySelectorAll('td.err, th')].map(e => e.getBoundingClientRect().right))})"
    )
    assert fit["scroll"] <= fit["client"] and fit["right"] <= fit["client"], fit
    frame.locator("#chart-calendar").scroll_into_view_if_needed()
    b.shot("status-view-charts")
    frame.locator("#dead-letters").scroll_into_view_if_needed()
    b.shot("status-view-dead-letters")


def check_log_links(b: Browser, af: str, s: dict[str, Any]) -> None:
    """An employee's 'log' link names its latest task instance in the UI: a phase task of its mapped
    group (map index = its Kürzel), or plan_employees when the run had nothing for it. The link is
    followed in the window (as a middle click would) and the UI shows that task's log."""
    for code, expect in (
        (
            s["parked_employee"],
            r"/dags/advoware_calendar_sync/runs/e2e_calendar/tasks/"
            r"employee_sync\.phase_4_updates/mapped/\d+$",
        ),
        (s["quiet"], r"/dags/advoware_calendar_sync/runs/e2e_calendar/tasks/plan_employees$"),
    ):
        frame = open_status_view(b, af)
        row = frame.locator("table#employees tbody tr", has=frame.locator(f"td:first-child code:text-is('{code}')"))
        href = row.get_by_role("link", name="log").get_attribute("href")
        url = urljoin(f"{af}/sync-status/", href)
        assert re.match(f"^{re.escape(af)}{expect}", url), url
        b.page.goto(url)
        b.page.get_by_text(re.compile(rf"\b{code}\b")).first.wait_for()  # the log names the employee
        b.shot(f"log-{code}")
