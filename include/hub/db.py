"""Connections to the hub and its migrations (Alembic, applied idempotently)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

_HERE = Path(__file__).resolve().parent


def alembic_config(dsn: str):  # -> alembic.config.Config (imported lazily: alembic is heavy)
    from alembic.config import Config

    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return cfg


def sqlalchemy_url(dsn: str) -> str:
    if dsn.startswith("postgresql://"):
        return "postgresql+psycopg://" + dsn[len("postgresql://"):]
    if dsn.startswith("postgres://"):
        return "postgresql+psycopg://" + dsn[len("postgres://"):]
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
def connect(dsn: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
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
