"""Sending the alerts of include/alerts.py: one e-mail per incident through Airflow's SMTP connection
`smtp_default` (the SMTP provider's SmtpHook) to ALERT_EMAIL_TO; without recipients the alert is
only logged (WARNING, ids only). Also the calendar DAG's failure callback and the party checks.

A failed send is logged and never fails the task that found the incident (the task's own outcome
stays what it was).
"""

from __future__ import annotations

import html
import logging
from typing import Any

from include import alerts, conn_ids
from include.settings import get_settings

log = logging.getLogger(__name__)

PLANNING_INCIDENT = "calendar:planning"


def send(alert: alerts.Alert) -> bool:
    """Mail `alert` to ALERT_EMAIL_TO; True if a mail went out."""
    log.warning("ALERT %s: %s", alert.kind, alert.subject)
    recipients = get_settings().alert.recipients()
    if not recipients:
        log.info("no ALERT_EMAIL_TO: alert not mailed")
        return False
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=conn_ids.SMTP) as smtp:
            smtp.send_email_smtp(
                to=recipients, subject=alert.subject, html_content=f"<pre>{html.escape(alert.text())}</pre>"
            )
    except Exception as exc:  # the incident stays visible in the log and the status view
        log.error("alert %s not mailed: %s", alert.kind, type(exc).__name__)
        return False
    return True


def _incidents() -> alerts.Incidents:
    from include.airflow_provider.hooks.redis import RedisUrlHook

    return alerts.Incidents(RedisUrlHook().get_conn())


def _reason(exc: BaseException | None) -> str:
    """Our own failures say what happened by ids; anything else by type (and status) only."""
    if exc is None:
        return "unknown"
    from include.calendar_sync.context import PhaseFailed, SyncStopped
    from include.calendar_sync.executor import reason_of

    if isinstance(exc, SyncStopped | PhaseFailed):
        return str(exc)
    return reason_of(exc)


def _unit_failures(ti: Any, exc: BaseException | None) -> tuple[dict[str, str], set[str]]:
    """Who failed in this phase task (employee -> reason) and which of them stopped for safety."""
    from include.calendar_sync.context import UnitIncomplete, UnitPhaseFailed

    if isinstance(exc, UnitPhaseFailed):
        return dict(exc.failures), set(exc.stopped)
    if isinstance(exc, UnitIncomplete) or isinstance(getattr(exc, "__cause__", None), UnitIncomplete):
        return {}, set()  # they failed in an earlier phase, which reported them
    # the task itself failed (a crash, its timeout, the hub): every employee of its unit
    unit = (getattr(getattr(ti, "task", None), "op_kwargs", None) or {}).get("unit") or {}
    employees = [str(w["employee"]) for w in unit.get("employees", [])] or [str(ti.rendered_map_index)]
    return dict.fromkeys(employees, _reason(exc)), set()


def on_calendar_failure(context: Any) -> None:
    """on_failure_callback of the calendar DAG's tasks: after the last retry, not per retry. One mail
    per failed task naming the employees not already in an open incident."""
    from include.airflow_provider.hooks.hub import hub_dsn
    from include.hub import runs
    from include.hub.db import connect

    ti, run_id, exc = context["ti"], context["run_id"], context.get("exception")
    log_url = getattr(ti, "log_url", None)
    if ti.map_index < 0:  # the run's planning: one incident until a planning succeeds again
        try:
            if not _incidents().open(PLANNING_INCIDENT):
                log.info("planning failed again: incident already reported")
                return
        except Exception as exc_state:  # when in doubt, mail
            log.warning("incident state not readable (%s): mailing", type(exc_state).__name__)
        send(
            alerts.calendar_failed({"(planning of the run)": _reason(exc)}, run_id, ti.task_id, log_url, stopped=False)
        )
        return
    failures, stopped = _unit_failures(ti, exc)
    fresh = dict(failures)
    try:  # one incident per employee until the employee's sync succeeds again
        with connect(hub_dsn()) as conn:
            for employee in failures:
                if runs.previous_run_status(conn, employee, run_id) in ("failed", "stopped"):
                    log.info("calendar sync of %s failed again: incident already reported", employee)
                    fresh.pop(employee)
    except Exception as exc_state:  # when in doubt, mail
        log.warning("incident state not readable (%s): mailing", type(exc_state).__name__)
        fresh = dict(failures)
    for is_stop in (True, False):
        group = {e: r for e, r in fresh.items() if (e in stopped) == is_stop}
        if group:
            send(alerts.calendar_failed(group, run_id, ti.task_id, log_url, stopped=is_stop))


def on_planning_success(context: Any) -> None:
    """on_success_callback of plan_employees: a planning incident is over."""
    try:
        _incidents().close(PLANNING_INCIDENT)
    except Exception as exc:
        log.warning("planning incident not closed: %s", type(exc).__name__)


def after_phase(summary: dict[str, Any], run_id: str) -> None:
    """A phase that parked items: one mail naming them (each item is parked once)."""
    if summary.get("parked"):
        send(alerts.parked(summary["employee"], run_id, int(summary["phase"]), list(summary["parked"])))


def channel_incident(employee: str) -> str:
    return f"google_channel:{employee}"


def on_channel_failure(
    employee: str, channel_id: str | None, error: str, incidents: alerts.Incidents | None = None
) -> None:
    """A watch channel not opened or renewed: one mail per incident (until one opens again)."""
    try:
        fresh = (incidents or _incidents()).open(channel_incident(employee))
    except Exception as exc_state:  # when in doubt, mail
        log.warning("incident state not readable (%s): mailing", type(exc_state).__name__)
        fresh = True
    if fresh:
        send(alerts.google_channel_failed(employee, channel_id, error))
    else:
        log.info("google channel of %s failed again: incident already reported", employee)


def on_channel_recovered(employee: str, incidents: alerts.Incidents | None = None) -> None:
    try:
        (incidents or _incidents()).close(channel_incident(employee))
    except Exception as exc:
        log.warning("channel incident of %s not closed: %s", employee, type(exc).__name__)


def check_party_queue(stats: Any, incidents: alerts.Incidents) -> None:
    """The oldest queued party waiting too long: one mail while it lasts (the sweep's first look)."""
    threshold = get_settings().alert.party_queue_age_s
    if stats.ready and stats.oldest_ready_age_s >= threshold:
        if incidents.open("party_queue_age"):
            send(alerts.party_queue_age(stats.oldest_ready_age_s, threshold, stats.pending))
    else:
        incidents.close("party_queue_age")


def check_party_dead_letters(open_letters: int, incidents: alerts.Incidents) -> None:
    """Open party dead letters at or past the threshold: one mail while it lasts (after each drain)."""
    threshold = get_settings().alert.party_dead_letters
    if open_letters >= threshold:
        if incidents.open("party_dead_letters"):
            send(alerts.party_dead_letters(open_letters, threshold))
    else:
        incidents.close("party_dead_letters")
