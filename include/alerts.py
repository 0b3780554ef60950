"""What needs a person: the alerts of the platform, as plain data (no Airflow, no SMTP here).

An alert is one incident, mailed once (include/airflow_provider/notifiers/alerts.py sends it through Airflow's SMTP
connection `smtp_default` to ALERT_EMAIL_TO, or logs it when no address is set):

- **calendar_failed**: employees' calendar sync failed after its retries (one mail per phase task of
  their unit, naming them; or the run's planning). One per incident: an employee whose previous run
  also failed is not named again; the first success closes the incident (the run log `sync_runs` is
  the state, include/hub/runs.py `previous_run_status`).
- **safety_stop**: the same, when the failure was a safety stop (deletions withheld, e.g. a calendar
  emptied in Google); it names the two answers (refill Google from Advoware, confirm the deletions).
- **parked**: items of a phase were parked as dead letters (an item is parked once).
- **calendar_recreated / calendar_reshared / calendar_relisted**: an employee's calendar was deleted in
  Google, unshared, or taken off their list, and the sync repaired it (once: it is fine afterwards).
- **party_dead_letters**: the open party dead letters reached ALERT_PARTY_DEAD_LETTERS.
- **party_queue_age**: the oldest queued party has waited ALERT_PARTY_QUEUE_AGE_S.
  The two party incidents are open while their condition holds (a Redis key, `Incidents`).
- **google_channel_failed**: an employee's Google watch channel could not be opened or renewed (push
  for them falls back to the schedule). One per incident (a Redis key per employee), closed when a
  channel of theirs opens again.

Texts name ids only (employee code, frNr, Google event id, dead-letter id, run id): never an
appointment text, a party's data, an e-mail address or a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

ALERT_KEY_PREFIX = "kanzlei:alert:"


@dataclass(frozen=True)
class Alert:
    kind: str
    subject: str
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([*self.lines, "", "-- kanzlei-sync (ids only; details in the Airflow task log)"])


def calendar_failed(
    failures: dict[str, str], run_id: str, task_id: str, log_url: str | None, *, stopped: bool
) -> Alert:
    """Employees (Kürzel -> reason) whose sync failed in one task after its retries: one mail."""
    what = "safety stop (deletions withheld)" if stopped else "failed after its retries"
    if len(failures) == 1:
        ((employee, reason),) = failures.items()
        who = employee
        lines = [f"Employee: {employee}", f"Run: {run_id}", f"Task: {task_id}", f"Reason: {reason}"]
    else:
        names = list(failures)
        who = f"{len(names)} employees ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})"
        lines = [
            f"Run: {run_id}",
            f"Task: {task_id}",
            f"{len(names)} employees:",
            *(f"Employee: {e} ({r})" for e, r in failures.items()),
        ]
    if stopped:
        lines += [
            "Nothing was written; Advoware keeps every appointment. Check the listings, then answer the",
            "stop once per employee, in the Sync status view (its buttons) or with the command line:",
        ]
        for employee in failures:
            answer = f"kanzlei-sync calendar resolve-stop --employee {employee}"
            lines += [
                f"  refill Google from Advoware:  {answer} refill",
                f"  confirm the deletions:        {answer} confirm",
            ]
        lines.append(
            "(the same as triggering advoware_calendar_sync for the employee with refill_google or force_deletions)."
        )
    if log_url:
        lines.append(f"Log: {log_url}")
    return Alert(
        "safety_stop" if stopped else "calendar_failed", f"[kanzlei-sync] calendar sync of {who}: {what}", lines
    )


REPAIRS = {
    "recreated": (
        "made again",
        "The calendar was deleted in Google. A new one was made (shared with the employee "
        "again) and is filled from Advoware in this run; nothing was deleted in Advoware.",
    ),
    "reshared": (
        "shared again",
        "The employee's access to the calendar had been removed in Google (its sharing "
        "rule was gone). It was shared again, without a notification mail; nothing was lost.",
    ),
    "relisted": (
        "put back on the employee's list",
        "The employee had removed the calendar from their calendar "
        "list in Google. It was added back; nothing was lost.",
    ),
}


def calendar_repaired(employee: str, what: str, run_id: str, calendar_id: str | None) -> Alert:
    """The sync found an employee's calendar gone or out of their sight and repaired it (once: a repaired
    calendar is fine on the next run)."""
    done, why = REPAIRS[what]
    return Alert(
        f"calendar_{what}",
        f"[kanzlei-sync] calendar of {employee}: {done}",
        [
            f"Employee: {employee}",
            f"Run: {run_id}",
            f"Calendar: {calendar_id or '-'}",
            why,
            "If that was meant (the employee should not have the calendar), deactivate the employee in Advoware.",
        ],
    )


def parked(employee: str, run_id: str, phase: int, items: list[dict[str, object]]) -> Alert:
    lines = [
        f"Employee: {employee}",
        f"Run: {run_id}, phase {phase}",
        f"{len(items)} item(s) failed too often and were parked as dead letters:",
    ]
    for item in items:
        lines.append(
            f"  {item.get('kind')} frNr={item.get('frnr')} event={item.get('google_event_id')} ({item.get('reason')})"
        )
    lines.append("After fixing the cause: kanzlei-sync dead-letters list --source calendar_sync, then replay.")
    return Alert("parked", f"[kanzlei-sync] calendar sync of {employee}: {len(items)} item(s) parked", lines)


def google_channel_failed(employee: str, channel_id: str | None, error: str) -> Alert:
    return Alert(
        "google_channel_failed",
        f"[kanzlei-sync] Google push for {employee}: channel not renewed",
        [
            f"Employee: {employee}",
            f"Channel: {channel_id or '(none yet)'}",
            f"Error: {error}",
            "Google no longer tells the sync of this employee's changes at once; the schedule still "
            "syncs them. The next calendar run tries again; by hand: kanzlei-sync channels renew "
            f"{employee}. Check GATEWAY_PUBLIC_URL (HTTPS, a valid certificate) and Google's quota.",
        ],
    )


def party_dead_letters(open_letters: int, threshold: int) -> Alert:
    return Alert(
        "party_dead_letters",
        f"[kanzlei-sync] {open_letters} open party dead letters (threshold {threshold})",
        [
            f"Open dead letters of beteiligte_sync: {open_letters} (alert at {threshold}).",
            "List them: kanzlei-sync dead-letters list; replay after fixing the cause.",
        ],
    )


def party_queue_age(age_s: float, threshold_s: int, pending: int) -> Alert:
    return Alert(
        "party_queue_age",
        f"[kanzlei-sync] party queue: oldest item waits {age_s / 60:.0f} min",
        [
            f"The oldest queued party has waited {age_s:.0f} s (alert at {threshold_s} s); {pending} parties pending.",
            "Is beteiligte_sync running (paused? failing?) and is Advoware reachable?",
        ],
    )


class Incidents:
    """Open incidents of conditions that hold for a while (Redis keys): `open` is True only for the
    call that opens one, so a condition seen by every sweep mails once; `close` when it is gone."""

    def __init__(self, client: redis.Redis, prefix: str = ALERT_KEY_PREFIX) -> None:
        self.r, self.prefix = client, prefix

    def open(self, name: str) -> bool:
        return bool(self.r.set(self.prefix + name, "1", nx=True))

    def close(self, name: str) -> None:
        self.r.delete(self.prefix + name)
