"""PostgreSQL: the sync hub answers and its tables are at the revision the code expects."""

from __future__ import annotations

import psycopg

from include.checks.verdict import Verdict, fail, ok
from include.hub.db import current_revision, heads
from include.settings import Settings

SERVICE = "hub"


def check(settings: Settings) -> list[Verdict]:
    pg = settings.postgres
    where = f"database {pg.db} on {pg.host}:{pg.port}"
    try:
        revision = current_revision(pg.dsn())
    except psycopg.Error as exc:
        return [
            fail(
                SERVICE,
                f"{where}: cannot connect ({type(exc).__name__})",
                "check POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD and that PostgreSQL runs; "
                "a missing database is created by `kanzlei-sync migrate`",
            )
        ]
    expected = heads()
    if revision not in expected:
        return [
            fail(
                SERVICE,
                f"{where}: at revision {revision or 'none'}, the code expects {', '.join(expected)}",
                "run `kanzlei-sync migrate` (compose: the airflow-init step does it on every start)",
            )
        ]
    return [ok(SERVICE, f"{where}: revision {revision} (head)")]
