"""The hub schema: migrations from an empty database, re-run idempotently, one head, no duplicate links."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from include.hub.db import connect, current_revision, heads, migrate
from tests.conftest import HUB_TABLES, pg_dsn

EXPECTED_TABLES = {t.strip() for t in HUB_TABLES.split(",")}


@pytest.fixture
def empty_db() -> Iterator[str]:
    """A database name that does not exist yet; migrate() must create it. Dropped afterwards."""
    name = f"hub_mig_{uuid.uuid4().hex[:10]}"
    yield pg_dsn(name)
    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(dsn: str) -> set[str]:
    with connect(dsn) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
    return {r["table_name"] for r in rows}


def test_exactly_one_alembic_head() -> None:
    from alembic.script import ScriptDirectory

    from include.hub.db import alembic_config

    found = heads()
    assert len(found) == 1, found
    # ...and every revision lies on the one line that leads to it (no orphaned branch).
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/x"))
    on_line = {rev.revision for rev in script.walk_revisions("base", found[0])}
    assert on_line == {rev.revision for rev in script.walk_revisions()}


def test_migrate_from_nothing_then_rerun_keeps_data(empty_db: str) -> None:
    migrate(empty_db)  # creates the database, then every table
    head = heads()[0]
    assert current_revision(empty_db) == head
    assert EXPECTED_TABLES <= _tables(empty_db)

    with connect(empty_db) as conn:
        conn.execute("INSERT INTO calendar_links (employee, frnr, google_event_id) VALUES ('ab', 1, 'ev1')")

    migrate(empty_db)  # second run: nothing to do, nothing lost
    assert current_revision(empty_db) == head
    with connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) AS n FROM calendar_links").fetchone()["n"] == 1


def test_downgrade_to_base_and_up_again(empty_db: str) -> None:
    migrate(empty_db)
    from alembic import command

    from include.hub.db import alembic_config

    command.downgrade(alembic_config(empty_db), "base")
    assert not (EXPECTED_TABLES & _tables(empty_db))
    migrate(empty_db)
    assert EXPECTED_TABLES <= _tables(empty_db)


def test_two_processes_migrating_at_once_take_turns(empty_db: str) -> None:
    """Gateway and Airflow may migrate at the same moment; the advisory lock serialises them.

    Separate processes, as in production (Alembic's context is process-global, not per thread).
    """
    from include.hub.db import ensure_database

    ensure_database(empty_db)
    # Each process pauses at the start of every transaction after its first: that widens the gap
    # between one migration's commit and the next migration, where a lock that ended with the first
    # transaction let the other process run the same later migration (seen under load in CI).
    code = textwrap.dedent("""
        import sys, time
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        begins = []

        @event.listens_for(Engine, "begin")
        def pause(conn):
            begins.append(1)
            if len(begins) > 1:
                time.sleep(0.3)

        from include.hub.db import migrate
        migrate(sys.argv[1])
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, empty_db], stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert current_revision(empty_db) == heads()[0]
    with connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) AS n FROM alembic_version").fetchone()["n"] == 1


def _insert_link(dsn: str, employee: str, frnr: int | None, event_id: str | None) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO calendar_links (employee, frnr, google_event_id) VALUES (%s, %s, %s)",
            (employee, frnr, event_id),
        )


def test_a_duplicate_calendar_link_is_impossible(hub: str) -> None:
    _insert_link(hub, "ab", 100, "evab100")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _insert_link(hub, "ab", 100, "other")  # same appointment linked twice
    with pytest.raises(psycopg.errors.UniqueViolation):
        _insert_link(hub, "ab", 101, "evab100")  # same event linked twice
    # The same numbers for another employee are another link; half links are allowed, once.
    _insert_link(hub, "cd", 100, "evab100")
    _insert_link(hub, "ab", None, "onlygoogle")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _insert_link(hub, "ab", None, "onlygoogle")
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert_link(hub, "ab", None, None)  # a link to nothing


def test_other_unique_keys(hub: str) -> None:
    with connect(hub) as conn:
        conn.execute("INSERT INTO party_links (espo_id, bet_nr) VALUES ('e1', 7)")
        conn.execute(
            "INSERT INTO advoware_create_intents (employee, google_event_id, fingerprint) VALUES ('ab', 'g1', 'f')"
        )
        conn.execute("INSERT INTO sync_runs (run_id, kind, employee) VALUES ('r1', 'calendar', 'ab')")
    duplicates = [
        "INSERT INTO party_links (espo_id, bet_nr) VALUES ('e2', 7)",
        "INSERT INTO party_links (espo_id, bet_nr) VALUES ('e1', 8)",
        "INSERT INTO advoware_create_intents (employee, google_event_id, fingerprint) VALUES ('ab', 'g1', 'x')",
        "INSERT INTO sync_runs (run_id, kind, employee) VALUES ('r1', 'calendar', 'ab')",
    ]
    for sql in duplicates:
        with pytest.raises(psycopg.errors.UniqueViolation), connect(hub) as conn:
            conn.execute(sql)


# -- stored plans: format 1 (one action class, every field present) read back and migrated -----------------
# The migration's own frozen list of format 1's fields (a digit-led module name: not importable by `import`)
FORMAT_1_FIELDS = importlib.import_module("include.hub.migrations.versions.0006_typed_plan_actions").FORMAT_1


def _format_1_plan() -> dict[str, object]:
    """A plan as the planner stored it before typed actions (the shape of its `asdict`)."""

    def action(**given: object) -> dict[str, object]:
        return {name: given.get(name) for name in FORMAT_1_FIELDS}

    body = {"id": "ev1", "summary": "Termin", "start": {"date": "2025-03-10"}, "end": {"date": "2025-03-11"}}
    return {
        "employee": "AB",
        "window_start": "2025-01-01",
        "window_end": "2025-12-31",
        "google_complete": True,
        "policy": {"dry_run": False},
        "adoptions": [
            action(kind="adopt", rule="marker", employee="AB", frnr=7, google_event_id="ev7", google_fingerprint="g7")
        ],
        "phase1": [
            action(
                kind="create_google",
                rule="new_advoware",
                employee="AB",
                frnr=1,
                google_event_id="ev1",
                google_body=body,
                advoware_fingerprint="a1",
                google_fingerprint="g1",
                span_start="2025-03-10",
                span_end="2025-03-10",
                advoware_changed_at="2025-03-01T10:00:00",
                google_seen_fingerprint=None,
            )
        ],
        "phase2": [
            action(
                kind="create_advoware",
                rule="new_google",
                employee="AB",
                google_event_id="ev2",
                advoware_body={"text": "Neu"},
                advoware_fingerprint="a2",
                google_fingerprint="g2",
                google_updated="2025-03-02T10:00:00Z",
            )
        ],
        "phase3": [
            action(
                kind="delete_google",
                rule="advoware_deleted",
                row="deleted/unchanged",
                employee="AB",
                frnr=3,
                google_event_id="ev3",
                google_updated="2025-03-03T10:00:00Z",
                confirm_absent="advoware",
            ),
            action(
                kind="delete_advoware",
                rule="google_deleted",
                row="unchanged/deleted",
                employee="AB",
                frnr=4,
                google_event_id="ev4",
                advoware_changed_at="2025-03-04T10:00:00",
                confirm_absent="google",
            ),
        ],
        "phase4": [
            action(
                kind="keep_exception",
                rule="moved",
                employee="AB",
                frnr=5,
                google_event_id="ev5_20250310",
                google_fingerprint="g5",
                master_event_id="ev5",
                original_start="2025-03-10",
                exception_kind="moved",
            )
        ],
        "reports": [{"kind": "orphan", "employee": "AB", "frnr": None, "google_event_id": "ev9", "detail": ""}],
        "stop_reason": None,
        "withheld": {},
    }


def test_a_stored_plan_of_format_1_reads_back_and_migrates_to_format_2(empty_db: str) -> None:
    import json

    from alembic import command

    from include.calendar_engine.plan import (
        Adopt,
        CreateAdvoware,
        CreateGoogle,
        DeleteAdvoware,
        DeleteGoogle,
        KeepException,
        Plan,
    )
    from include.hub.db import alembic_config
    from include.hub.plans import load_plan

    old = _format_1_plan()
    migrate(empty_db, "0005")
    with connect(empty_db) as conn:
        plan_id = conn.execute(
            "INSERT INTO sync_plans (run_id, employee, plan) VALUES ('r1', 'AB', %s) RETURNING id", (json.dumps(old),)
        ).fetchone()["id"]
        before = load_plan(conn, plan_id).plan  # the reader takes format 1 as it is
    assert [type(a) for a in before.actions()] == [
        Adopt,
        CreateGoogle,
        CreateAdvoware,
        DeleteGoogle,
        DeleteAdvoware,
        KeepException,
    ]
    delete_google, delete_advoware = before.phase3
    assert delete_google.confirm_absent == "advoware" and delete_advoware.confirm_absent == "google"
    assert before.phase1[0].google_body == old["phase1"][0]["google_body"]
    assert before.phase2[0].advoware_id is None and before.phase4[0].master_event_id == "ev5"

    migrate(empty_db)  # 0006 rewrites the row
    with connect(empty_db) as conn:
        stored = conn.execute("SELECT plan FROM sync_plans WHERE id = %s", (plan_id,)).fetchone()["plan"]
        after = load_plan(conn, plan_id).plan
    assert stored["format"] == 2
    assert stored == json.loads(before.to_json())  # exactly what the writer of format 2 stores
    for action in (a for key in ("adoptions", "phase1", "phase2", "phase3", "phase4") for a in stored[key]):
        assert None not in (action.get("kind"), action.get("employee"), action.get("google_event_id"))
    assert set(stored["phase2"][0]) == {
        "kind",
        "rule",
        "employee",
        "google_event_id",
        "row",
        "advoware_body",
        "advoware_fingerprint",
        "google_fingerprint",
        "span_start",
        "span_end",
        "google_updated",
    }
    assert set(stored["phase3"][0]) == {"kind", "rule", "employee", "google_event_id", "frnr", "row"}
    assert after == before == Plan.from_dict(stored)

    command.downgrade(alembic_config(empty_db), "0005")  # back to format 1, field for field
    with connect(empty_db) as conn:
        restored = conn.execute("SELECT plan FROM sync_plans WHERE id = %s", (plan_id,)).fetchone()["plan"]
    expected = json.loads(json.dumps(old))
    expected["phase3"][0]["google_updated"] = None  # format 2 has no use for it (nor had the executor)
    assert restored == expected
