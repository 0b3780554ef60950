"""Work units of a calendar run: how the employees with work are spread over the mapped task group.

A unit is what one `employee_sync` group (its four phase tasks) works through. Up to `max_units`
employees with work (SYNC_MAX_UNITS): one unit each, named by the Kürzel, as before. More: exactly
`max_units` units of neighbouring Kürzel (alphabetical; sizes differ by at most one), each named by
its first and last Kürzel, so an administrator finds an employee's unit by its name. A run then has
at most 1 + 4 × `max_units` task instances, whatever the size of the firm: Airflow's scheduler
slowed to a quarter of a task instance per second with 4,000 of them in one run, and it refuses to
expand a task over more than `core.max_map_length` (1,024) items (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

MAX_LABEL = 250  # Airflow's rendered_map_index column


def label_of(members: list[dict[str, Any]]) -> str:
    """The unit's name in the UI (its map index): the Kürzel, or the first and last with the count."""
    if len(members) == 1:
        return str(members[0]["employee"])[:MAX_LABEL]
    first, last = str(members[0]["employee"])[:100], str(members[-1]["employee"])[:100]
    return f"{first} … {last} ({len(members)} employees)"


def make_units(work: list[dict[str, Any]], max_units: int) -> list[dict[str, Any]]:
    """The units over `work` (items with "employee"); [] when nobody has work."""
    if max_units < 1:
        raise ValueError("max_units must be >= 1")
    items = sorted(work, key=lambda w: str(w["employee"]))
    count = min(len(items), max_units)
    units: list[dict[str, Any]] = []
    start = 0
    for index in range(count):
        size = len(items) // count + (1 if index < len(items) % count else 0)
        members = items[start : start + size]
        start += size
        units.append({"index": index, "label": label_of(members), "employees": members})
    return units


def employees_of(unit: dict[str, Any]) -> list[str]:
    return [str(w["employee"]) for w in unit["employees"]]
