"""The per-employee table of a run: created, updated, deleted, adopted, skipped, failed per side,
and the series exceptions (kept, reverted, dropped), then one line per series exception the run
reported (`series_items`).

Read from the run log (`sync_runs.counts`: the plan's counts and each phase's outcome counts,
keyed `<side>.<result>`, see bookkeeping.py) and the reports of the run's plans. Ids and numbers only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from include.hub import plans, runs
from include.hub.db import connect

COLUMNS = (
    ("google.created", "G+"),
    ("google.updated", "G~"),
    ("google.deleted", "G-"),
    ("google.adopted", "G adopt"),
    ("google.skipped", "G skip"),
    ("google.failed", "G fail"),
    ("google.parked", "G park"),
    ("advoware.created", "A+"),
    ("advoware.updated", "A~"),
    ("advoware.deleted", "A-"),
    ("advoware.skipped", "A skip"),
    ("advoware.failed", "A fail"),
    ("advoware.parked", "A park"),
    ("hub.kept", "X kept"),
    ("google.reverted", "X rev"),
    ("google.dropped", "X drop"),
)
LEGEND = (
    "G = Google, A = Advoware; + created, ~ updated, - deleted; park = parked in the dead letters; "
    "X = series exceptions in Google (kept as they are, reverted to their series, dropped as orphans)"
)
SERIES_REPORTS = ("series_exception_kept", "series_exception_reverted", "series_exception_dropped")


def totals(counts: dict[str, Any]) -> Counter[str]:
    """Sum of the phases' outcome counts of one run row."""
    out: Counter[str] = Counter()
    for n in (1, 2, 3, 4):
        out.update({k: int(v) for k, v in (counts.get(f"phase{n}") or {}).items()})
    return out


def rows(hub_dsn: str, run_id: str) -> list[dict[str, Any]]:
    with connect(hub_dsn) as conn:
        found = runs.run_rows(conn, run_id)
    out = []
    for r in found:
        t = totals(r["counts"] or {})
        out.append(
            {
                "employee": r["employee"],
                "status": r["status"],
                "error": r["error"],
                **{key: t.get(key, 0) for key, _ in COLUMNS},
            }
        )
    return out


def series_items(hub_dsn: str, run_id: str) -> list[str]:
    """One line per series exception the run reported, and per series held back by its exceptions."""
    with connect(hub_dsn) as conn:
        found = plans.run_reports(conn, run_id)
    return [
        f"{r['employee']} {r['kind']} frNr={r['frnr']} event={r['google_event_id']} ({r['detail']})"
        for r in found
        if r.get("kind") in SERIES_REPORTS
        or (r.get("kind") == "unsupported_rule" and str(r.get("detail", "")).startswith("series with exceptions"))
    ]


def table(hub_dsn: str, run_id: str) -> str:
    data = rows(hub_dsn, run_id)
    head = ["employee", *(label for _, label in COLUMNS), "status"]
    lines = [
        [r["employee"], *(str(r[key]) for key, _ in COLUMNS), r["status"] + (f" ({r['error']})" if r["error"] else "")]
        for r in data
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, len(head) - 1) else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [f"run {run_id}", fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    if data:
        sums = [sum(int(r[key]) for r in data) for key, _ in COLUMNS]
        out.append(fmt.format("total", *(str(s) for s in sums), ""))
    out.append(LEGEND)
    items = series_items(hub_dsn, run_id)
    if items:
        out.append("series exceptions:")
        out += [f"  {line}" for line in items]
    return "\n".join(out)
