"""The calendar sync's moving parts (hub + clients around the pure engine in include/calendar_engine/).

`employees` (who is synced), `prepare` (read both sides, plan, store the plan), `executor` (apply one
phase of a stored plan, crash-safe), `finalize` (sync token, run log), `recovery` (rebuild links),
`report` (per-employee table), `runner` (all steps in-process: demo, CLI, tests), `demo`.
No Airflow import anywhere here: dags/advoware_calendar_sync.py wires these into tasks.
"""
