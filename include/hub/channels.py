"""Hub store of Google's watch channels (table calendar_channels): Google does not list a project's
channels, so this is their only record. Ids, expiry, counts and error classes only; the per-channel
token is a secret: never logged, compared in constant time by whoever checks a notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from include.hub.db import HubConnection

ACTIVE, STOPPED = "active", "stopped"


@dataclass(frozen=True)
class Channel:
    channel_id: str
    employee: str
    calendar_id: str
    resource_id: str | None
    token: str
    address: str
    expires_at: datetime
    state: str
    created_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    last_message_number: int | None
    last_notification_at: datetime | None
    failures: int
    last_error: str | None
    failing_since: datetime | None


_COLUMNS = ", ".join(Channel.__dataclass_fields__)


def add(
    conn: HubConnection,
    *,
    channel_id: str,
    employee: str,
    calendar_id: str,
    resource_id: str | None,
    token: str,
    address: str,
    expires_at: datetime,
) -> None:
    """Record a channel Google has just opened (events.watch answered)."""
    conn.execute(
        """INSERT INTO calendar_channels (channel_id, employee, calendar_id, resource_id, token, address, expires_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (channel_id, employee, calendar_id, resource_id, token, address, expires_at),
    )


def get(conn: HubConnection, channel_id: str) -> Channel | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM calendar_channels WHERE channel_id = %s", (channel_id,)).fetchone()
    return Channel(**row) if row else None


def active(conn: HubConnection, employee: str | None = None) -> list[Channel]:
    """Active channels, newest first per employee (during a renewal an employee briefly has two)."""
    where, args = ("AND employee = %s", (employee,)) if employee else ("", ())
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM calendar_channels WHERE state = 'active' {where} ORDER BY employee, expires_at DESC",
        args,
    ).fetchall()
    return [Channel(**r) for r in rows]


def expiring(conn: HubConnection, within_s: float) -> list[Channel]:
    """Active channels that expire within `within_s` seconds (or already have)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM calendar_channels WHERE state = 'active' "
        "AND expires_at <= now() + make_interval(secs => %s) ORDER BY expires_at",
        (within_s,),
    ).fetchall()
    return [Channel(**r) for r in rows]


def stop(conn: HubConnection, channel_id: str, reason: str) -> bool:
    """Mark a channel stopped (renewed, employee_left, unknown_to_google, ...); False if it was not active."""
    return (
        conn.execute(
            """UPDATE calendar_channels SET state = 'stopped', stopped_at = now(), stop_reason = %s
           WHERE channel_id = %s AND state = 'active'""",
            (reason, channel_id),
        ).rowcount
        == 1
    )


def note_notification(conn: HubConnection, channel_id: str, message_number: int | None) -> bool:
    """Record a notification accepted on the channel; False when its message number is not newer than
    the last one seen (Google repeats messages: a replay changes nothing)."""
    return (
        conn.execute(
            """UPDATE calendar_channels SET last_notification_at = now(),
               last_message_number = greatest(coalesce(last_message_number, -1), coalesce(%s, -1))
           WHERE channel_id = %s
             AND (%s::bigint IS NULL OR last_message_number IS NULL OR %s::bigint > last_message_number)""",
            (message_number, channel_id, message_number, message_number),
        ).rowcount
        == 1
    )


def note_failure(conn: HubConnection, channel_id: str, error: str) -> int:
    """Count a failed renewal (error: a class name, never a body); returns the failures in a row."""
    row = conn.execute(
        """UPDATE calendar_channels SET failures = failures + 1, last_error = %s,
               failing_since = coalesce(failing_since, now())
           WHERE channel_id = %s RETURNING failures""",
        (error, channel_id),
    ).fetchone()
    return int(row["failures"]) if row else 0


def clear_failure(conn: HubConnection, channel_id: str) -> None:
    conn.execute(
        """UPDATE calendar_channels SET failures = 0, last_error = NULL, failing_since = NULL
                    WHERE channel_id = %s""",
        (channel_id,),
    )


LISTED = (
    "channel_id, employee, calendar_id, state, expires_at, created_at, stopped_at, stop_reason, "
    "last_notification_at, last_message_number, failures, last_error"
)  # never the token


def listing(conn: HubConnection, *, include_stopped: bool = False) -> list[dict[str, object]]:
    """The channels for an operator (kanzlei-sync channels list): everything but the secret."""
    where = "" if include_stopped else "WHERE state = 'active'"
    return list(
        conn.execute(f"SELECT {LISTED} FROM calendar_channels {where} ORDER BY employee, expires_at DESC").fetchall()
    )
