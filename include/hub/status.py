"""What the status view reads from the hub: ids, counts and outcomes only (professional secrecy).

Every query names its columns. None of them selects a column that can hold client data: not
`calendar_links.last_error` or fingerprints, not `sync_plans.plan`, not `dead_letters.payload`,
not `party_links.last_error`, not `write_audit.detail`, not `employee_calendars.email`, not
`series_exceptions.fingerprint`. The two
free-text columns that are shown, `sync_runs.error` and `dead_letters.reason`, carry ids only by the
project's logging rules and are still clipped to CLIP_CHARS. Times come back as ISO 8601 strings in
UTC. `activity` is the last ACTIVITY_DAYS days per UTC day (the chart): calendar writes per side,
failed and parked items from the run log's phase counts and the dead letters; party writes and
failures from the party run rows, dead letters by the day they were parked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from include.hub.db import HubConnection, connect

LINK_STATUSES = ("linked", "pending", "failed", "conflict", "unsupported", "deleted", "skipped")
SHOWN_LINK_STATUSES = ("linked", "pending", "failed", "conflict", "unsupported")
PARTY_STATUSES = ("linked", "unlinked", "deleted", "failed")
CLIP_CHARS = 160
MAX_COUNT_KEYS = 20
ACTIVITY_DAYS = 7
CALENDAR_SERIES = ("google_writes", "advoware_writes", "failed", "parked")
PARTY_SERIES = ("advoware_writes", "failed", "dead")
_WRITTEN = ("created", "updated", "deleted")
# What the page shows of a dead letter and of a series exception (never the payload, the fingerprint).
_DEAD_LETTER_COLUMNS = "id, source, entity_id, reason, attempts, created_at"
_EXCEPTION_COLUMNS = "employee, frnr, master_event_id, instance_id, original_start, kind, first_seen_at, last_seen_at"


def clip(text: str | None, limit: int = CLIP_CHARS) -> str | None:
    """One line, at most `limit` characters (an error is a clue for the admin, not a report)."""
    if text is None:
        return None
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _numbers(counts: Any) -> dict[str, int | float]:
    """Only numeric entries of a counts jsonb: a stray text value never reaches the page."""
    if not isinstance(counts, dict):
        return {}
    out = {str(k): v for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return dict(sorted(out.items())[:MAX_COUNT_KEYS])


def _phase_totals(counts: Any) -> dict[str, int]:
    """A calendar run's outcome per `<side>.<result>`, summed over its phases (nested in the row)."""
    out: dict[str, int] = {}
    if isinstance(counts, dict):
        for n in (1, 2, 3, 4):
            phase = counts.get(f"phase{n}")
            for k, v in phase.items() if isinstance(phase, dict) else ():
                if isinstance(v, int) and not isinstance(v, bool):
                    out[str(k)] = out.get(str(k), 0) + v
    return out


def _run(row: dict[str, Any]) -> dict[str, Any]:
    numbers = _numbers(row["counts"]) | _phase_totals(row["counts"])
    # the phase tasks' bookkeeping (calendar_sync/phases.py) is not an outcome: the unit (map index of
    # the employee's group in the Airflow run, for the log link) goes apart
    unit = numbers.pop("unit", None)
    numbers.pop("phases_done", None)
    return {
        "run_id": row["run_id"],
        "status": row["status"],
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "counts": dict(sorted(numbers.items())[:MAX_COUNT_KEYS]),
        "error": clip(row["error"]),
        "unit": int(unit) if isinstance(unit, int) else None,
    }


# -- hub sections (each takes an open connection with dict rows) ---------------------------------
def calendars(conn: HubConnection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT employee, calendar_id, mode, active, last_full_sync_at, "
        "(sync_token IS NOT NULL AND sync_token <> '') AS has_sync_token FROM employee_calendars"
    ).fetchall()
    return {
        r["employee"]: {
            "calendar_id": r["calendar_id"],
            "mode": r["mode"],
            "active": r["active"],
            "last_full_sync_at": _iso(r["last_full_sync_at"]),
            "has_sync_token": r["has_sync_token"],
        }
        for r in rows
    }


def link_counts(conn: HubConnection) -> dict[str, dict[str, int]]:
    """Per employee: links by status (every status present, zeros included) and a total."""
    out: dict[str, dict[str, int]] = {}
    for r in conn.execute(
        "SELECT employee, status, count(*) AS n FROM calendar_links GROUP BY employee, status"
    ).fetchall():
        counts = out.setdefault(r["employee"], {s: 0 for s in LINK_STATUSES} | {"total": 0})
        counts[r["status"]] = int(r["n"])
        counts["total"] += int(r["n"])
    return out


def last_calendar_runs(conn: HubConnection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT DISTINCT ON (employee) employee, run_id, status, started_at, finished_at, counts, error "
        "FROM sync_runs WHERE kind = 'calendar' AND employee IS NOT NULL "
        "ORDER BY employee, started_at DESC, id DESC"
    ).fetchall()
    return {r["employee"]: _run(r) for r in rows}


def last_party_run(conn: HubConnection) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT run_id, status, started_at, finished_at, counts, error FROM sync_runs "
        "WHERE kind = 'beteiligte' ORDER BY started_at DESC, id DESC LIMIT 1"
    ).fetchone()
    return _run(row) if row else None


def channels(conn: HubConnection, margin_s: float = 86400.0) -> dict[str, dict[str, Any]]:
    """Per employee: their Google watch channel (the newest active one) and its state: `active`,
    `expiring` (within `margin_s`, the renewal margin), `failing` (its renewal failed), `expired` (past
    its expiry unrenewed) or `none`; and the last notification on any of their channels. Never the token."""
    out: dict[str, dict[str, Any]] = {}
    for r in conn.execute(
        "SELECT employee, max(last_notification_at) AS last_notification_at FROM calendar_channels GROUP BY employee"
    ).fetchall():
        out[r["employee"]] = {
            "state": "none",
            "channel_id": None,
            "expires_at": None,
            "failures": 0,
            "last_error": None,
            "last_notification_at": _iso(r["last_notification_at"]),
        }
    for r in conn.execute(
        "SELECT DISTINCT ON (employee) employee, channel_id, expires_at, failures, last_error, "
        "CASE WHEN failures > 0 THEN 'failing' WHEN expires_at <= now() THEN 'expired' "
        "     WHEN expires_at <= now() + make_interval(secs => %s) THEN 'expiring' ELSE 'active' END AS state "
        "FROM calendar_channels WHERE state = 'active' ORDER BY employee, expires_at DESC",
        (margin_s,),
    ).fetchall():
        out[r["employee"]].update(
            state=r["state"],
            channel_id=r["channel_id"],
            expires_at=_iso(r["expires_at"]),
            failures=int(r["failures"]),
            last_error=clip(r["last_error"]),
        )
    return out


NO_CHANNEL = {
    "state": "none",
    "channel_id": None,
    "expires_at": None,
    "failures": 0,
    "last_error": None,
    "last_notification_at": None,
}


def employees(conn: HubConnection, channel_margin_s: float = 86400.0) -> list[dict[str, Any]]:
    """One row per employee (Kürzel) known to any of the calendar tables."""
    cals, links, runs = calendars(conn), link_counts(conn), last_calendar_runs(conn)
    chans = channels(conn, channel_margin_s)
    out = []
    for employee in sorted(set(cals) | set(links) | set(runs)):
        out.append(
            {
                "employee": employee,
                "calendar": cals.get(employee),  # None: links or runs exist, but no calendar row (not provisioned)
                "links": links.get(employee, {s: 0 for s in LINK_STATUSES} | {"total": 0}),
                "last_run": runs.get(employee),
                "channel": chans.get(employee, dict(NO_CHANNEL)),
            }
        )
    return out


def _counted_and_newest(
    conn: HubConnection, rows_from: str, by: str, columns: str, order: str, newest: int
) -> tuple[dict[Any, int], list[dict[str, Any]]]:
    """The rows `rows_from` (a table and its WHERE clause) gives: how many per `by` (sorted by it),
    and the `newest` of them (by `order`) with `columns`, times as ISO strings."""
    counts = {
        r[by]: int(r["n"])
        for r in conn.execute(f"SELECT {by}, count(*) AS n FROM {rows_from} GROUP BY {by}").fetchall()
    }
    rows = conn.execute(f"SELECT {columns} FROM {rows_from} ORDER BY {order} LIMIT %s", (newest,)).fetchall()
    return dict(sorted(counts.items())), [_shown(r) for r in rows]


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the page gets it: its times as ISO strings."""
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def dead_letters(conn: HubConnection, newest: int = 10) -> dict[str, Any]:
    by_source, rows = _counted_and_newest(
        conn, "dead_letters WHERE replayed_at IS NULL", "source", _DEAD_LETTER_COLUMNS, "id DESC", newest
    )
    return {
        "open": sum(by_source.values()),
        "by_source": by_source,
        "newest": [r | {"reason": clip(r["reason"])} for r in rows],
    }


def party_links(conn: HubConnection) -> dict[str, Any]:
    by_status = {s: 0 for s in PARTY_STATUSES}
    for r in conn.execute("SELECT status, count(*) AS n FROM party_links GROUP BY status").fetchall():
        by_status[r["status"]] = int(r["n"])
    last = conn.execute("SELECT max(last_synced_at) AS t FROM party_links").fetchone()
    return {
        "by_status": by_status,
        "total": sum(by_status.values()),
        "last_synced_at": _iso(last["t"]) if last else None,
    }


def series_exceptions(conn: HubConnection, newest: int = 20) -> dict[str, Any]:
    """The series exceptions standing in Google (kept and reported by the sync): how many per
    employee, and the newest with their ids, original start (where the series puts the occurrence)
    and kind. Not the fingerprint."""
    by_employee, rows = _counted_and_newest(
        conn,
        "series_exceptions WHERE status = 'standing'",
        "employee",
        _EXCEPTION_COLUMNS,
        "last_seen_at DESC, id DESC",
        newest,
    )
    return {"standing": sum(by_employee.values()), "by_employee": by_employee, "newest": rows}


def recent_writes(conn: HubConnection, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, at, actor, method, target, status FROM write_audit ORDER BY id DESC LIMIT %s", (limit,)
    ).fetchall()
    return [
        {
            "id": r["id"],
            "at": _iso(r["at"]),
            "actor": r["actor"],
            "method": r["method"],
            "target": clip(r["target"], 200),
            "status": r["status"],
        }
        for r in rows
    ]


def activity(conn: HubConnection, now: datetime, days: int = ACTIVITY_DAYS) -> dict[str, Any]:
    """Per UTC day, oldest first, today last: what each DAG wrote and what failed (numbers only)."""
    today = now.astimezone(UTC).date()
    day_list = [today - timedelta(days=days - 1 - i) for i in range(days)]
    since = datetime.combine(day_list[0], datetime.min.time(), tzinfo=UTC)
    index = {d: i for i, d in enumerate(day_list)}
    calendar = {k: [0] * days for k in CALENDAR_SERIES}
    parties = {k: [0] * days for k in PARTY_SERIES}

    def add(series: dict[str, list[int]], key: str, day: date, n: Any) -> None:
        if day in index and n:
            series[key][index[day]] += int(n)

    # phase counts are nested objects {"google.created": n, ...}: summed in the database
    for r in conn.execute(
        """SELECT (r.started_at AT TIME ZONE 'UTC')::date AS day, k.key, sum(k.value::bigint) AS n
           FROM sync_runs r
           CROSS JOIN LATERAL jsonb_each(r.counts) p
           CROSS JOIN LATERAL jsonb_each_text(CASE WHEN jsonb_typeof(p.value) = 'object' THEN p.value
                                                   ELSE '{}'::jsonb END) k
           WHERE r.kind = 'calendar' AND r.started_at >= %s AND p.key ~ '^phase[1-4]$'
                 AND k.value ~ '^[0-9]+$'
           GROUP BY 1, 2""",
        (since,),
    ).fetchall():
        side, _, result = r["key"].partition(".")
        if side in ("google", "advoware") and result in _WRITTEN:
            add(calendar, f"{side}_writes", r["day"], r["n"])
        elif side in ("google", "advoware") and result == "failed":
            add(calendar, "failed", r["day"], r["n"])
    for r in conn.execute(
        """SELECT (started_at AT TIME ZONE 'UTC')::date AS day,
                  sum(CASE WHEN counts->>'advoware_writes' ~ '^[0-9]+$'
                           THEN (counts->>'advoware_writes')::bigint ELSE 0 END) AS writes,
                  sum(CASE WHEN counts->>'retried' ~ '^[0-9]+$' THEN (counts->>'retried')::bigint ELSE 0 END)
                      AS retried
           FROM sync_runs WHERE kind = 'beteiligte' AND started_at >= %s GROUP BY 1""",
        (since,),
    ).fetchall():
        add(parties, "advoware_writes", r["day"], r["writes"])
        add(parties, "failed", r["day"], r["retried"])
    for r in conn.execute(
        """SELECT (created_at AT TIME ZONE 'UTC')::date AS day, source = 'calendar_sync' AS calendar,
                  count(*) AS n FROM dead_letters WHERE created_at >= %s GROUP BY 1, 2""",
        (since,),
    ).fetchall():
        if r["calendar"]:
            add(calendar, "parked", r["day"], r["n"])
        else:
            add(parties, "dead", r["day"], r["n"])
    return {"days": [d.isoformat() for d in day_list], "calendar": calendar, "parties": parties}


def dead_letter_state(conn: HubConnection, dead_letter_id: int) -> dict[str, Any] | None:
    """One dead letter's ids and state (after a replay: when), for the page's notice."""
    r = conn.execute(
        "SELECT id, source, entity_id, created_at, replayed_at FROM dead_letters WHERE id = %s", (dead_letter_id,)
    ).fetchone()
    return _shown(r) if r is not None else None


@dataclass(frozen=True)
class StatusQuery:
    """What the page asks to see: how many audited writes and open dead letters, and one dead
    letter's state (`dead_letter_id`: the notice after a replay)."""

    audit_limit: int = 20
    dead_letter_limit: int = 10
    dead_letter_id: int | None = None


def read_status(
    dsn: str, query: StatusQuery | None = None, *, now: datetime | None = None, channel_margin_s: float = 86400.0
) -> dict[str, Any]:
    query = query or StatusQuery()
    with connect(dsn) as conn:
        # A status page never writes, and never waits long on a busy hub.
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SET LOCAL statement_timeout = 5000")
        out = {
            "employees": employees(conn, channel_margin_s),
            "party_run": last_party_run(conn),
            "dead_letters": dead_letters(conn, query.dead_letter_limit),
            "series_exceptions": series_exceptions(conn),
            "party_links": party_links(conn),
            "writes": recent_writes(conn, query.audit_limit),
            "activity": activity(conn, now or datetime.now(UTC)),
        }
        if query.dead_letter_id is not None:
            out["dead_letter"] = dead_letter_state(conn, query.dead_letter_id)
        return out
