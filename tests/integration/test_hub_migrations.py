"""The hub schema: migrations from an empty database, re-run idempotently, one head, no duplicate links."""

from __future__ import annotations

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
