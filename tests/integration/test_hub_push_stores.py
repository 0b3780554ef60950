"""The hub's record of Google's watch channels and the per-employee sync lease, on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from include.hub import channels, leases
from include.hub.db import connect


def _add(conn: psycopg.Connection, channel_id: str, employee: str = "ab", *, in_s: float = 3600) -> None:
    channels.add(
        conn,
        channel_id=channel_id,
        employee=employee,
        calendar_id=f"cal-{employee}",
        resource_id=f"res-{channel_id}",
        token=f"tok-{channel_id}",
        address="https://gw.example/x",
        expires_at=datetime.now(UTC) + timedelta(seconds=in_s),
    )


def test_a_channel_is_recorded_found_and_stopped_once(hub: str) -> None:
    with connect(hub) as conn:
        _add(conn, "c1")
        _add(conn, "c2", in_s=7200)  # a renewal: briefly two for one employee, the newest first
        assert [c.channel_id for c in channels.active(conn, "ab")] == ["c2", "c1"]
        assert channels.get(conn, "c1").token == "tok-c1"  # type: ignore[union-attr]
        assert channels.get(conn, "nope") is None
        assert channels.stop(conn, "c1", "renewed") is True
        assert channels.stop(conn, "c1", "renewed") is False  # already stopped
        stopped = channels.get(conn, "c1")
        assert stopped and stopped.state == channels.STOPPED and stopped.stop_reason == "renewed"
        assert [c.channel_id for c in channels.active(conn)] == ["c2"]


def test_expiring_lists_only_active_channels_inside_the_margin(hub: str) -> None:
    with connect(hub) as conn:
        _add(conn, "soon", "ab", in_s=60)
        _add(conn, "late", "cd", in_s=86400)
        _add(conn, "gone", "ef", in_s=10)
        channels.stop(conn, "gone", "employee_left")
        assert [c.channel_id for c in channels.expiring(conn, within_s=3600)] == ["soon"]


def test_a_replayed_or_older_message_number_is_not_news(hub: str) -> None:
    with connect(hub) as conn:
        _add(conn, "c1")
        assert channels.note_notification(conn, "c1", 1) is True
        assert channels.note_notification(conn, "c1", 3) is True
        assert channels.note_notification(conn, "c1", 3) is False  # Google repeats a message
        assert channels.note_notification(conn, "c1", 2) is False  # an older one arrives late
        assert channels.get(conn, "c1").last_message_number == 3  # type: ignore[union-attr]
        assert channels.note_notification(conn, "unknown", 1) is False


def test_failures_count_in_a_row_until_cleared(hub: str) -> None:
    with connect(hub) as conn:
        _add(conn, "c1")
        assert channels.note_failure(conn, "c1", "HttpError") == 1
        first = channels.get(conn, "c1").failing_since  # type: ignore[union-attr]
        assert channels.note_failure(conn, "c1", "TimeoutError") == 2
        again = channels.get(conn, "c1")
        assert again and again.failing_since == first and again.last_error == "TimeoutError"
        channels.clear_failure(conn, "c1")
        cleared = channels.get(conn, "c1")
        assert cleared and cleared.failures == 0 and cleared.failing_since is None


def test_one_holder_per_employee_until_released_or_expired(hub: str) -> None:
    with connect(hub) as conn:
        assert leases.acquire(conn, "ab", "run-1", ttl_s=60) is True
        assert leases.acquire(conn, "ab", "run-2", ttl_s=60) is False  # the scheduled run holds it
        assert leases.acquire(conn, "ab", "run-1", ttl_s=60) is True  # our own retry takes it again
        assert leases.acquire(conn, "cd", "run-2", ttl_s=60) is True  # others are free
        assert leases.holder(conn, "ab")[0] == "run-1"  # type: ignore[index]
        assert leases.release(conn, "ab", "run-2") is False  # not theirs to give back
        assert leases.release(conn, "ab", "run-1") is True
        assert leases.acquire(conn, "ab", "run-2", ttl_s=60) is True


def test_a_killed_holders_lease_expires_and_cannot_be_renewed_after_takeover(hub: str) -> None:
    with connect(hub) as conn:
        assert leases.acquire(conn, "ab", "killed-worker", ttl_s=60)
        # The worker died; its lease runs out (moved into the past instead of waiting for it).
        conn.execute("UPDATE employee_sync_leases SET expires_at = now() - interval '1 second'")
        assert leases.holder(conn, "ab") is None
        assert leases.acquire(conn, "ab", "next-run", ttl_s=60) is True
        assert leases.renew(conn, "ab", "killed-worker", ttl_s=60) is False
        assert leases.renew(conn, "ab", "next-run", ttl_s=60) is True
