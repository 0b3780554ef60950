"""The per-employee run table the demo and operators read: sums per side, parked items included."""

from __future__ import annotations

from include.calendar_sync.report import rows, table
from include.hub import runs
from include.hub.db import connect


def test_table_sums_the_phases_and_shows_parked_items(hub: str) -> None:
    with connect(hub) as conn:
        runs.start_run(conn, "run-1", "AB", {"plan": {"phase1": 3}})
        runs.add_run_counts(conn, "run-1", "AB", {"phase1": {"google.created": 3, "google.parked": 1}})
        runs.add_run_counts(
            conn, "run-1", "AB", {"phase4": {"google.updated": 2, "advoware.updated": 1}}, status="success"
        )
        runs.start_run(conn, "run-1", "CD", {}, status="failed", error="phase 2: 1 item(s) failed")
        runs.add_run_counts(conn, "run-1", "CD", {"phase2": {"advoware.created": 4, "advoware.failed": 1}})

    by_employee = {r["employee"]: r for r in rows(hub, "run-1")}
    assert by_employee["AB"]["google.created"] == 3 and by_employee["AB"]["google.parked"] == 1
    assert by_employee["AB"]["google.updated"] == 2 and by_employee["AB"]["advoware.updated"] == 1
    assert by_employee["CD"]["advoware.created"] == 4 and by_employee["CD"]["advoware.failed"] == 1

    text = table(hub, "run-1")
    assert "G park" in text and "A fail" in text
    total = next(line for line in text.splitlines() if line.startswith("total"))
    assert total.split()[1:4] == ["3", "2", "0"]  # G+, G~, G-
    assert "phase 2: 1 item(s) failed" in text
