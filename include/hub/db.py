"""Connections to the hub and its migrations (Alembic, applied idempotently).

`Hub` is the one way code outside this package talks to the hub: a unit of work (a task, a phase, a
request) holds one, passes it down, and every function of include/hub takes the connection of one of
its transactions. `connect()` stays for one-off scripts and tests.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import psycopg
from psycopg.rows import DictRow, dict_row

if TYPE_CHECKING:
    from alembic.config import Config

# Every hub connection is opened with dict rows; functions of include/hub take this type.
HubConnection: TypeAlias = psycopg.Connection[DictRow]

_HERE = Path(__file__).resolve().parent


def returned(row: DictRow | None) -> DictRow:
    """The row of a statement that always yields one (INSERT/UPDATE ... RETURNING of a row known to
    exist, an aggregate); psycopg types `fetchone()` as optional."""
    if row is None:
        raise LookupError("the statement returned no row")
    return row


def alembic_config(dsn: str) -> Config:
    # alembic is imported lazily: it is heavy and only migrations need it
    from alembic.config import Config

    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return cfg


def sqlalchemy_url(dsn: str) -> str:
    if dsn.startswith("postgresql://"):
        return "postgresql+psycopg://" + dsn[len("postgresql://") :]
    if dsn.startswith("postgres://"):
        return "postgresql+psycopg://" + dsn[len("postgres://") :]
    return dsn


def ensure_database(dsn: str) -> None:
    """Create the hub database if it does not exist (needs a role allowed to create databases)."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    name = info.get("dbname")
    if not name:
        return
    admin = psycopg.conninfo.make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def migrate(dsn: str, revision: str = "head") -> None:
    from alembic import command

    ensure_database(dsn)
    command.upgrade(alembic_config(dsn), revision)


def heads() -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config("postgresql://unused/x")).get_heads())


def current_revision(dsn: str) -> str | None:
    with connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('alembic_version') AS t").fetchone()
        if not exists or exists["t"] is None:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row["version_num"] if row else None


@contextlib.contextmanager
def connect(dsn: str, *, autocommit: bool = False) -> Iterator[HubConnection]:
    """A connection with dict rows; commits on success, rolls back on error."""
    conn = psycopg.connect(dsn, row_factory=dict_row, autocommit=autocommit, connect_timeout=10)
    try:
        yield conn
        if not autocommit:
            conn.commit()
    except BaseException:
        if not autocommit:
            conn.rollback()
        raise
    finally:
        conn.close()


class Hub:
    """The hub for one unit of work: one connection per thread, opened on first use (connecting costs
    ~40 ms under load, a transaction on an open connection well under 1 ms), kept for the unit's
    life; `transaction()` commits on success and rolls back on error; a connection that broke (the
    server restarted) is replaced at the next transaction. `close()` closes every connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._opened: list[HubConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> HubConnection:
        conn: HubConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            conn = psycopg.connect(self.dsn, row_factory=dict_row, autocommit=True, connect_timeout=10)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[HubConnection]:
        conn = self._connection()
        with conn.transaction():
            yield conn

    def execute(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """One idempotent statement in a transaction of its own; a connection dropped under it
        (the hub restarted) is replaced and the statement sent once more."""
        for attempt in (1, 2):
            try:
                with self.transaction() as conn:
                    cur = conn.execute(sql, params)
                    return list(cur.fetchall()) if cur.description else []
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                self._local.conn = None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
