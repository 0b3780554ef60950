"""The hub's write audit: one row per write toward Advoware (or an attempt that was refused).

Never a body: only who (actor, token scope), what (method, target path or system:id), the outcome
(status) and ids (request id, employee code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from include.hub.db import HubConnection, connect

_INSERT = """
INSERT INTO write_audit (actor, token_scope, method, target, status, request_id, employee, detail)
VALUES (%(actor)s, %(token_scope)s, %(method)s, %(target)s, %(status)s, %(request_id)s,
        %(employee)s, %(detail)s)
RETURNING id
"""


@dataclass(frozen=True)
class AuditEntry:
    actor: str  # 'proxy', 'calendar_sync', 'beteiligte_sync', ...
    method: str
    target: str  # path without query, or system:id
    status: int | None = None
    token_scope: str | None = None
    request_id: str | None = None
    employee: str | None = None
    detail: str | None = None  # a short reason ("write_protected", "timeout"), never data


def record(conn_or_dsn: HubConnection | str, entry: AuditEntry) -> int:
    """Insert one row; returns its id. With a connection the caller owns the transaction."""
    params = {
        **entry.__dict__,
        "method": entry.method.upper(),
        "detail": (entry.detail or None) and entry.detail[:500],
    }
    if isinstance(conn_or_dsn, str):
        with connect(conn_or_dsn) as conn:
            return int(_first(conn.execute(_INSERT, params).fetchone()))
    return int(_first(conn_or_dsn.execute(_INSERT, params).fetchone()))


def _first(row: Any) -> Any:
    return row["id"] if isinstance(row, dict) else row[0]
