"""Hub access for per-employee Google calendars (table employee_calendars) and the reset of an
employee's links (table calendar_links) when their calendar had to be recreated.

Functions take an open psycopg connection (dict rows, see include.hub.db.connect) so callers can
group them in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from include.hub.db import HubConnection, returned


@dataclass(frozen=True)
class EmployeeCalendar:
    employee: str
    email: str | None
    calendar_id: str | None
    acl_rule_id: str | None
    mode: str
    sync_token: str | None
    active: bool
    last_full_sync_at: datetime | None
    access_checked_at: datetime | None = None  # 0003: the employee's access to it last checked


_COLUMNS = "employee, email, calendar_id, acl_rule_id, mode, sync_token, active, last_full_sync_at, access_checked_at"


def _row(row: dict[str, Any] | None) -> EmployeeCalendar | None:
    return EmployeeCalendar(**row) if row else None


def get(conn: HubConnection, employee: str) -> EmployeeCalendar | None:
    return _row(conn.execute(f"SELECT {_COLUMNS} FROM employee_calendars WHERE employee = %s", (employee,)).fetchone())


def upsert_calendar(
    conn: HubConnection, employee: str, *, email: str | None, calendar_id: str, mode: str, acl_rule_id: str | None
) -> EmployeeCalendar:
    """Remember where the employee's calendar is. A new calendar id drops the old sync token."""
    row = conn.execute(
        f"""
        INSERT INTO employee_calendars (employee, email, calendar_id, mode, acl_rule_id)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (employee) DO UPDATE SET
            email = EXCLUDED.email,
            sync_token = CASE WHEN employee_calendars.calendar_id IS DISTINCT FROM EXCLUDED.calendar_id
                              THEN NULL ELSE employee_calendars.sync_token END,
            last_full_sync_at = CASE
                WHEN employee_calendars.calendar_id IS DISTINCT FROM EXCLUDED.calendar_id
                THEN NULL ELSE employee_calendars.last_full_sync_at END,
            calendar_id = EXCLUDED.calendar_id,
            mode = EXCLUDED.mode,
            acl_rule_id = EXCLUDED.acl_rule_id,
            updated_at = now()
        RETURNING {_COLUMNS}
        """,
        (employee, email, calendar_id, mode, acl_rule_id),
    ).fetchone()
    return EmployeeCalendar(**returned(row))


def save_sync_token(conn: HubConnection, employee: str, token: str | None, *, full_sync: bool = False) -> None:
    conn.execute(
        """UPDATE employee_calendars SET sync_token = %s, updated_at = now(),
               last_full_sync_at = CASE WHEN %s THEN now() ELSE last_full_sync_at END
           WHERE employee = %s""",
        (token, full_sync, employee),
    )


def clear_sync_token(conn: HubConnection, employee: str) -> None:
    save_sync_token(conn, employee, None)


def reset_links(conn: HubConnection, employee: str) -> int:
    """The employee's Google calendar is new: no link points at an existing Google event any more.

    Links with an Advoware side lose their Google side and become `pending` (unless deleted, skipped
    or unsupported), so the next sync writes them into the new calendar; links that only had a
    Google side are removed. Returns rows touched.
    """
    gone = conn.execute("DELETE FROM calendar_links WHERE employee = %s AND frnr IS NULL", (employee,)).rowcount
    kept = conn.execute(
        """UPDATE calendar_links SET google_event_id = NULL, google_etag = NULL, google_updated = NULL,
               google_fingerprint = NULL, attempts = 0,
               status = CASE WHEN status IN ('deleted', 'unsupported', 'skipped') THEN status
                             ELSE 'pending' END,
               last_error = 'google calendar recreated', updated_at = now()
           WHERE employee = %s""",
        (employee,),
    ).rowcount
    return gone + kept


def record_employees(conn: HubConnection, emails: dict[str, str | None], active: set[str]) -> None:
    """Advoware's employee list as it is now: e-mail and active flag of each; an employee missing
    from it is no longer active (their calendar stays)."""
    for employee, email in emails.items():
        conn.execute(
            """INSERT INTO employee_calendars (employee, email, active) VALUES (%s, %s, %s)
               ON CONFLICT (employee) DO UPDATE SET email = coalesce(EXCLUDED.email,
                   employee_calendars.email), active = EXCLUDED.active, updated_at = now()""",
            (employee, email, employee in active),
        )
    conn.execute(
        "UPDATE employee_calendars SET active = false, updated_at = now() WHERE active AND NOT (employee = ANY(%s))",
        (list(emails),),
    )


def mark_access_checked(conn: HubConnection, employee: str) -> None:
    """The calendar exists and the employee can see it (checked, or just provisioned): now."""
    conn.execute(
        "UPDATE employee_calendars SET access_checked_at = now(), updated_at = now() WHERE employee = %s", (employee,)
    )


def all_calendars(conn: HubConnection) -> list[EmployeeCalendar]:
    """Every employee the hub knows, active or not (the channel maintenance compares them)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM employee_calendars ORDER BY employee").fetchall()
    return [EmployeeCalendar(**r) for r in rows]


def find_employee(conn: HubConnection, code: str) -> EmployeeCalendar | None:
    """The employee's row by their Kürzel in any case (a proxy body or a notification may spell it so)."""
    found = get(conn, code)
    if found is not None:
        return found
    row = conn.execute(
        "SELECT employee FROM employee_calendars WHERE upper(employee) = upper(%s) ORDER BY employee LIMIT 1", (code,)
    ).fetchone()
    return get(conn, row["employee"]) if row else None
