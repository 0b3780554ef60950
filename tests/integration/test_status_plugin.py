"""The sync status plugin inside Airflow 3.3.2: discovered by the plugins manager from plugins/, mounted
by the real api-server app at /sync-status, listed for the UI menu by /api/v2/plugins, and answering
only requests that carry the Airflow JWT (Bearer header or the UI's `_token` cookie)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from include import airflow_env
from include.settings import PostgresSettings, Settings

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def _clear_plugin_caches() -> None:
    from airflow import plugins_manager

    for fn in (
        plugins_manager._get_plugins,
        plugins_manager.get_fastapi_plugins,
        plugins_manager._get_ui_plugins,
        plugins_manager.get_flask_plugins,
    ):
        fn.cache_clear()


@pytest.fixture(scope="module")
def our_plugins() -> Iterator[None]:
    """Point Airflow at the project's plugins/ folder (the conftest AIRFLOW_HOME has its own)."""
    from airflow import settings

    saved = settings.PLUGINS_FOLDER
    settings.PLUGINS_FOLDER = str(PLUGINS)
    _clear_plugin_caches()
    yield
    settings.PLUGINS_FOLDER = saved
    _clear_plugin_caches()


@pytest.fixture(scope="module")
def api_app(our_plugins: None) -> Iterator[FastAPI]:
    """Airflow's own api-server app (SimpleAuthManager, SQLite metadata for the revoked-token check)."""
    assert os.environ["AIRFLOW_HOME"] != str(Path.home() / "airflow")
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from airflow.utils import db

    db.initdb()
    purge_cached_app()
    yield create_app(apps="core")
    purge_cached_app()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, hub: str, redis_url: str, tmp_path: Path) -> None:
    """The hub and Redis reach the plugin as Airflow connections, built exactly as in deployment."""
    info = psycopg.conninfo.conninfo_to_dict(hub)
    s = Settings(
        redis_url=redis_url,
        postgres=PostgresSettings(host=info["host"], port=int(info["port"]), db=info["dbname"], user=info["user"]),
    )
    env = airflow_env.connections(s, root=tmp_path)
    for cid in ("SYNC_HUB_DEFAULT", "REDIS_DEFAULT"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{cid}", env[f"AIRFLOW_CONN_{cid}"])
    with psycopg.connect(hub, autocommit=True) as c:
        c.execute("INSERT INTO employee_calendars (employee, calendar_id, mode) VALUES ('ABC', 'cal-abc', 'shared')")
        c.execute(
            "INSERT INTO calendar_links (employee, frnr, status) VALUES ('ABC', 1, 'failed'), "
            "('ABC', 2, 'failed'), ('ABC', 3, 'linked')"
        )
        c.execute("INSERT INTO dead_letters (source, entity_id, reason) VALUES ('beteiligte_sync', 'e42', 'x')")
    from include.queue.party_queue import PartyQueue

    PartyQueue.from_url(redis_url).enqueue(["p1", "p2", "p3", "p4"], "update")


def _token(role: str = "admin") -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role=role))


def test_plugins_manager_discovers_the_plugin(our_plugins: None) -> None:
    from airflow import plugins_manager
    from airflow.api_fastapi.core_api.datamodels.plugins import PluginResponse

    plugins, errors = plugins_manager._get_plugins()
    assert not [k for k in errors if "sync_status" in k], errors
    ours = [p for p in plugins if p.name == "sync_status"]
    assert len(ours) == 1
    apps, _ = plugins_manager.get_fastapi_plugins()
    mounted = [a for a in apps if a["url_prefix"] == "/sync-status"]
    assert len(mounted) == 1 and isinstance(mounted[0]["app"], FastAPI)
    views, _ = plugins_manager._get_ui_plugins()
    assert {
        "name": "Sync status",
        "href": "sync-status/",
        "url_route": "sync-status",
        "destination": "nav",
        "category": "browse",
    } in views
    # /api/v2/plugins silently drops a plugin that does not validate: the menu entry would vanish.
    info = [i for i in plugins_manager.get_plugin_info() if i["name"] == "sync_status"]
    PluginResponse.model_validate(info[0])


def test_mounted_app_needs_the_airflow_jwt(api_app: FastAPI, connections: None) -> None:
    client = TestClient(api_app)
    assert client.get("/sync-status/").status_code == 401
    assert client.get("/sync-status/api").status_code == 401
    bad = client.get("/sync-status/", headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code in (401, 403)
    assert "ABC" not in bad.text


def test_page_and_json_with_bearer_and_cookie(api_app: FastAPI, connections: None) -> None:
    client = TestClient(api_app)
    token = _token()
    page = client.get("/sync-status/", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert "<h1>Sync status</h1>" in page.text and "cal-abc" in page.text and "e42" in page.text

    # The browser in the UI's iframe sends the session cookie, not a header.
    client.cookies.set("_token", _token(role="viewer"))
    data = client.get("/sync-status/api").json()
    assert data["ok"] is True, data["errors"]
    assert data["employees"][0]["employee"] == "ABC"
    assert data["employees"][0]["links"]["failed"] == 2 and data["employees"][0]["links"]["linked"] == 1
    assert data["dead_letters"]["open"] == 1 and data["dead_letters"]["newest"][0]["entity_id"] == "e42"
    assert data["queue"]["pending"] == 4  # read through the redis_default connection (its ?db=N extra)


def test_ui_menu_lists_the_view(api_app: FastAPI) -> None:
    client = TestClient(api_app)
    r = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {_token()}"})
    assert r.status_code == 200, r.text
    ours = [p for p in r.json()["plugins"] if p["name"] == "sync_status"]
    assert ours and ours[0]["external_views"][0]["url_route"] == "sync-status"
    assert ours[0]["fastapi_apps"][0]["url_prefix"] == "/sync-status"


def test_without_connections_the_env_settings_are_used(
    our_plugins: None, monkeypatch: pytest.MonkeyPatch, hub: str, redis_url: str
) -> None:
    from airflow import plugins_manager

    from include.settings import get_settings

    plugin = next(p for p in plugins_manager._get_plugins()[0] if p.name == "sync_status")
    module = __import__(plugin.__module__)
    info = psycopg.conninfo.conninfo_to_dict(hub)
    for cid in ("SYNC_HUB_DEFAULT", "REDIS_DEFAULT"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{cid}", raising=False)
    monkeypatch.setenv("POSTGRES_HOST", info["host"])
    monkeypatch.setenv("POSTGRES_PORT", str(info["port"]))
    monkeypatch.setenv("POSTGRES_DB", info["dbname"])
    monkeypatch.setenv("POSTGRES_USER", info["user"])
    monkeypatch.setenv("POSTGRES_PASSWORD", "")
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    try:
        sources = module.airflow_sources()
    finally:
        get_settings.cache_clear()
    assert sources.hub_dsn == hub
    assert sources.redis_client.connection_pool.connection_kwargs["db"] == int(redis_url.rsplit("/", 1)[1])


# -- replaying a dead letter from the page --------------------------------------------------------
@pytest.fixture(scope="module")
def dags_in_db(api_app: FastAPI) -> None:
    """The two DAGs serialized into the metadata DB, as the dag-processor does (a trigger needs them)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert {"beteiligte_sync", "advoware_calendar_sync"} <= set(bag.dags), bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)


def _form_token(client: TestClient, token: str) -> str | None:
    import re

    page = client.get("/sync-status/", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    found = re.search(r'name=csrf_token value="([^"]+)"', page.text)
    return found.group(1) if found else None


def _dag_run(run_id: str) -> dict | None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.run_id == run_id).one_or_none()
        return (
            None
            if run is None
            else {
                "dag_id": run.dag_id,
                "state": str(run.state),
                "conf": run.conf,
                "triggered_by": str(run.triggered_by),
                "user": run.triggering_user_name,
            }
        )


def _open_letter(hub: str, source: str, entity: str, payload: str | None = None) -> int:
    with psycopg.connect(hub, autocommit=True) as c:
        return c.execute(
            "INSERT INTO dead_letters (source, entity_id, reason, payload, attempts) "
            "VALUES (%s, %s, 'failed 5 times', %s, 5) RETURNING id",
            (source, entity, payload),
        ).fetchone()[0]


def _replayed_at(hub: str, dead_letter_id: int) -> object:
    with psycopg.connect(hub) as c:
        return c.execute("SELECT replayed_at FROM dead_letters WHERE id = %s", (dead_letter_id,)).fetchone()[0]


def test_party_dead_letter_replayed_from_the_page(
    api_app: FastAPI, dags_in_db: None, connections: None, hub: str, redis_url: str
) -> None:
    from include.queue.party_queue import PartyQueue

    client = TestClient(api_app)
    token = _token()
    letter = _open_letter(hub, "beteiligte_sync", "e77")
    form = _form_token(client, token)
    assert form, "no replay form for an admin"
    r = client.post(
        f"/sync-status/dead-letters/{letter}/replay",
        data={"csrf_token": form},
        headers={"Authorization": f"Bearer {token}", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"../../?replayed={letter}"
    assert _replayed_at(hub, letter) is not None
    assert b"e77" in PartyQueue.from_url(redis_url).r.zrange("vmh:webhook:pending", 0, -1)
    run = _dag_run(f"replay__beteiligte__{letter}")
    assert run is not None and run["dag_id"] == "beteiligte_sync" and run["state"] == "queued"
    assert run["triggered_by"].endswith("UI") and run["user"] == "admin"

    after = client.get(f"/sync-status/?replayed={letter}", headers={"Authorization": f"Bearer {token}"})
    assert f"Dead letter {letter} (beteiligte_sync, <code>e77</code>): replayed at" in after.text
    assert f"replay__beteiligte__{letter}</code></a>: queued" in after.text
    again = client.post(
        f"/sync-status/dead-letters/{letter}/replay",
        data={"csrf_token": form},
        headers={"Authorization": f"Bearer {token}"},
        follow_redirects=False,
    )
    assert again.status_code == 409 and "already replayed" in again.text


def test_calendar_dead_letter_replay_starts_a_run_for_its_employee(
    api_app: FastAPI, dags_in_db: None, connections: None, hub: str
) -> None:
    from include.hub import parking
    from include.hub.db import connect

    with connect(hub) as conn:
        letter = parking.park(
            conn, "ABC", frnr=1, google_event_id=None, kind="create_google", error="HttpError 500", attempts=12
        )
    client = TestClient(api_app)
    token = _token()
    r = client.post(
        f"/sync-status/dead-letters/{letter}/replay",
        data={"csrf_token": _form_token(client, token)},
        headers={"Authorization": f"Bearer {token}"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    run = _dag_run(f"replay__calendar__{letter}")
    assert run is not None and run["dag_id"] == "advoware_calendar_sync"
    assert run["conf"] == {"full_content": False, "employees": ["ABC"]}
    with psycopg.connect(hub) as c:  # the item starts again
        assert c.execute(
            "SELECT status, attempts FROM calendar_links WHERE employee = 'ABC' AND frnr = 1"
        ).fetchone() == ("pending", 0)


def test_replay_refused_without_rights_token_or_same_origin(
    api_app: FastAPI, dags_in_db: None, connections: None, hub: str
) -> None:
    from include.status.replay import csrf_token

    client = TestClient(api_app)
    letter = _open_letter(hub, "beteiligte_sync", "e88")
    run_before = _dag_run(f"replay__beteiligte__{letter}")  # the hub's ids restart per test, Airflow's runs stay
    admin = _token()
    url = f"/sync-status/dead-letters/{letter}/replay"
    auth = {"Authorization": f"Bearer {admin}"}
    form = _form_token(client, admin)

    def post(data: dict, headers: dict) -> int:
        return client.post(url, data=data, headers=headers, follow_redirects=False).status_code

    assert post({"csrf_token": form}, {}) == 401  # no Airflow login at all
    assert post({}, auth) == 403  # no token
    assert post({"csrf_token": form + "0"}, auth) == 403  # a forged one
    other = csrf_token(b"another key", "SimpleAuthManagerUser:admin")
    assert post({"csrf_token": other}, auth) == 403
    assert post({"csrf_token": form}, {**auth, "Sec-Fetch-Site": "cross-site"}) == 403  # a foreign page's form
    assert post({"csrf_token": form}, {**auth, "Origin": "https://evil.example"}) == 403
    # a viewer sees the page read-only, and may not replay even with a token of their own
    viewer = _token(role="viewer")
    assert _form_token(client, viewer) is None
    page = client.get("/sync-status/", headers={"Authorization": f"Bearer {viewer}"})
    assert "read-only" in page.text
    assert post({"csrf_token": form}, {"Authorization": f"Bearer {viewer}"}) == 403
    assert _replayed_at(hub, letter) is None and _dag_run(f"replay__beteiligte__{letter}") == run_before


def test_the_connection_check_page_shows_what_the_cli_shows(
    api_app: FastAPI, connections: None, hub: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/sync-status/check: the verdicts of `kanzlei-sync check` for the .env of the api-server's process."""
    from include.checks.run import run_all
    from include.hub.db import heads
    from include.settings import get_settings
    from sandbox.runner import free_port

    info = psycopg.conninfo.conninfo_to_dict(hub)
    env = {
        "POSTGRES_HOST": info["host"],
        "POSTGRES_PORT": str(info["port"]),
        "POSTGRES_DB": info["dbname"],
        "POSTGRES_USER": info["user"],
        "REDIS_URL": redis_url,
        "SANDBOX_MODE": "true",
        "ADVOWARE_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "AIRFLOW_API_URL": f"http://127.0.0.1:{free_port()}",
        "ESPOCRM_API_KEY": "",
        "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH": "",
        "SMTP_HOST": "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    client = TestClient(api_app)
    assert client.get("/sync-status/check").status_code == 401
    client.cookies.set("_token", _token(role="viewer"))
    page = client.get("/sync-status/check")
    assert page.status_code == 200 and "<h1>Connection check</h1>" in page.text
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert f"database {info['dbname']} on" in page.text and f"revision {heads()[0]} (head)" in page.text
    assert "<tr class=check-fail><td>FAIL</td><td>advoware</td>" in page.text
    data = client.get("/sync-status/api/check").json()
    assert data["ok"] is False
    cli = [v.as_dict() for v in run_all(get_settings())]

    def steady(verdicts: list[dict]) -> list[dict]:  # the queue's age moves on between the two calls
        return [{**v, "checked": v["checked"].split(" (oldest ready")[0]} for v in verdicts]

    assert steady(data["verdicts"]) == steady(cli)
    assert "href=check" in client.get("/sync-status/").text  # linked from the status page


# -- answering a safety stop from the page --------------------------------------------------------
def _stopped_run(hub: str, employee: str, run_id: str, status: str = "stopped") -> None:
    with psycopg.connect(hub, autocommit=True) as c:
        c.execute(
            "INSERT INTO sync_runs (run_id, kind, employee, status, error) VALUES (%s, 'calendar', %s, %s, "
            "'google calendar emptied: all 12 linked appointments of the window were deleted there')",
            (run_id, employee, status),
        )


def test_a_safety_stop_is_answered_from_the_page(
    api_app: FastAPI, dags_in_db: None, connections: None, hub: str
) -> None:
    import re

    from include.safety_stop import stop_run

    _stopped_run(hub, "ABC", "scheduled__emptied")
    client = TestClient(api_app)
    admin = {"Authorization": f"Bearer {_token()}"}
    page = client.get("/sync-status/", headers=admin).text
    forms = re.findall(r'<form method=post action="(calendar/ABC/resolve-stop)">.*?value="(refill|confirm)"', page)
    assert sorted(f[1] for f in forms) == ["confirm", "refill"]
    assert ">Refill Google from Advoware</button>" in page and ">Confirm the deletions</button>" in page
    csrf = _form_token(client, _token())

    def answer(action: str, headers: dict, token: str | None = csrf) -> Any:
        return client.post(
            "/sync-status/calendar/ABC/resolve-stop",
            data={"action": action, "csrf_token": token},
            headers=headers,
            follow_redirects=False,
        )

    expected = stop_run("ABC", "refill", "scheduled__emptied")
    run_before = _dag_run(expected.run_id)  # Airflow's runs outlive the test's hub
    assert answer("refill", {**admin, "Origin": "https://evil.example"}).status_code == 403
    assert answer("refill", admin, token="0.forged").status_code == 403
    assert answer("delete everything", admin).status_code == 400
    viewer = {"Authorization": f"Bearer {_token(role='viewer')}"}
    assert "resolve-stop --employee ABC refill|confirm" in client.get("/sync-status/", headers=viewer).text
    assert answer("refill", viewer).status_code == 403
    assert _dag_run(expected.run_id) == run_before

    r = answer("refill", {**admin, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"../../?started={expected.run_id}"
    run = _dag_run(expected.run_id)
    assert run is not None and run["dag_id"] == "advoware_calendar_sync" and run["user"] == "admin"
    assert run["conf"] == {"employees": ["ABC"], "full_content": False, "refill_google": True}
    after = client.get(f"/sync-status/?started={expected.run_id}", headers=admin).text
    assert f"{expected.run_id}</code></a>: queued" in after
    assert answer("refill", admin).status_code == 303 and _dag_run(expected.run_id) == run  # no second run

    _stopped_run(hub, "DEF", "scheduled__fine", status="success")
    r = client.post(
        "/sync-status/calendar/DEF/resolve-stop",
        data={"action": "confirm", "csrf_token": csrf},
        headers=admin,
        follow_redirects=False,
    )
    assert r.status_code == 409 and "nothing to answer" in r.text
