"""Hub store of the per-employee sync lease (table employee_sync_leases): one employee is synced by
one run at a time, a scheduled run of the firm or a targeted one. A lease expires, so a worker killed
while holding one blocks the employee only until then; the holder renews it while it works.
"""

from __future__ import annotations

from datetime import datetime

from include.hub.db import HubConnection


def acquire(conn: HubConnection, employee: str, holder: str, ttl_s: float) -> bool:
    """Take the employee's lease for `ttl_s` seconds: True if it was free, expired or already ours."""
    row = conn.execute(
        """INSERT INTO employee_sync_leases (employee, holder, acquired_at, expires_at)
           VALUES (%s, %s, now(), now() + make_interval(secs => %s))
           ON CONFLICT (employee) DO UPDATE SET holder = EXCLUDED.holder, acquired_at = EXCLUDED.acquired_at,
               expires_at = EXCLUDED.expires_at
           WHERE employee_sync_leases.expires_at <= now() OR employee_sync_leases.holder = EXCLUDED.holder
           RETURNING employee""",
        (employee, holder, ttl_s),
    ).fetchone()
    return row is not None


def renew(conn: HubConnection, employee: str, holder: str, ttl_s: float) -> bool:
    """Extend our lease; False if it is no longer ours (it expired and another run took it)."""
    return (
        conn.execute(
            """UPDATE employee_sync_leases SET expires_at = now() + make_interval(secs => %s)
           WHERE employee = %s AND holder = %s""",
            (ttl_s, employee, holder),
        ).rowcount
        == 1
    )


def release(conn: HubConnection, employee: str, holder: str) -> bool:
    """Give the lease back (only ours)."""
    return (
        conn.execute(
            "DELETE FROM employee_sync_leases WHERE employee = %s AND holder = %s", (employee, holder)
        ).rowcount
        == 1
    )


def holder(conn: HubConnection, employee: str) -> tuple[str, datetime] | None:
    """Who holds the employee's unexpired lease, and until when."""
    row = conn.execute(
        "SELECT holder, expires_at FROM employee_sync_leases WHERE employee = %s AND expires_at > now()", (employee,)
    ).fetchone()
    return (row["holder"], row["expires_at"]) if row else None
