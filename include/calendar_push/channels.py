"""The life of Google watch channels: one per active employee's synced calendar, so Google tells the
gateway (GATEWAY_PUBLIC_URL + /webhooks/google/calendar) when the calendar's events change.

Google lists no channels: the hub (include/hub/channels.py) is their only record. `maintain` runs in
the calendar run's planning task; on a quiet run it is one hub transaction and no Google call: only
employees without an active channel on their calendar, channels expiring within
SYNC_CHANNEL_RENEW_MARGIN_S and channels of employees who left are touched.

- created for every active employee whose calendar has no active channel (a new calendar included);
- renewed before expiry: the new channel first, then `channels.stop` of the old (both deliver for a
  moment, which the gateway tolerates);
- stopped when the employee leaves (or the calendar was made anew: the channel watched the old one);
- recreated when Google no longer knows it: `channels.stop` answers 404, or it expired unrenewed
  (Google sends nothing when a channel expires).
Push is off without GATEWAY_PUBLIC_URL or with GOOGLE_PUSH_ENABLED=false: nothing here runs and the
schedule alone syncs. Every call goes through the client's session (rate limiter and backoff).
The per-channel token is a secret: never logged.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from googleapiclient.errors import HttpError

from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.errors import error_info
from include.hub import calendars as hub_calendars
from include.hub import channels as hub_channels
from include.hub.db import Hub
from include.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/google/calendar"

# (employee, channel id or None, error class) -> None: a renewal or creation failed / works again
OnFailure = Callable[[str, str | None, str], None]
OnRecovered = Callable[[str], None]


def push_address(settings: Settings) -> str | None:
    """Where Google posts, or None when push is off."""
    base = settings.gateway.public_url.strip().rstrip("/")
    if not base or not settings.google.push_enabled:
        return None
    return base + WEBHOOK_PATH


@dataclass
class Report:
    """What one maintenance did (ids only)."""

    push: bool = True
    created: list[str] = field(default_factory=list)  # employees given a channel they lacked
    renewed: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)  # Google no longer knew theirs
    stopped: list[str] = field(default_factory=list)  # employees who left
    failed: dict[str, str] = field(default_factory=dict)  # employee -> error class

    def quiet(self) -> bool:
        return not (self.created or self.renewed or self.recreated or self.stopped or self.failed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Due:
    """The hub's answer to "what needs a Google call": employees lacking a channel, channels to renew
    (expiring soon or already expired) and channels to stop (their employee left, or they watch a
    calendar the employee no longer has)."""

    missing: list[hub_calendars.EmployeeCalendar]
    expiring: list[tuple[hub_channels.Channel, hub_calendars.EmployeeCalendar]]
    orphaned: list[hub_channels.Channel]


def due(hub: Hub, margin_s: float, only: Iterable[str] | None = None) -> Due:
    """One hub transaction: what the maintenance must do (nothing on a quiet run)."""
    wanted = {e.upper() for e in only} if only else None
    with hub.transaction() as conn:
        calendars = {c.employee: c for c in hub_calendars.all_calendars(conn)}
        active = hub_channels.active(conn)
        expiring = hub_channels.expiring(conn, margin_s)
    synced = {e: c for e, c in calendars.items() if c.active and c.calendar_id and c.email}
    covered = {
        ch.employee for ch in active if ch.employee in synced and ch.calendar_id == synced[ch.employee].calendar_id
    }
    expiring_ids = {ch.channel_id for ch in expiring}
    orphaned = [ch for ch in active if ch.employee not in synced or ch.calendar_id != synced[ch.employee].calendar_id]
    orphan_ids = {ch.channel_id for ch in orphaned}
    # an employee with a fresh channel beside an expiring one (a renewal cut short) needs no renewal
    fresh = {ch.employee for ch in active if ch.channel_id not in expiring_ids and ch.channel_id not in orphan_ids}
    renew = [(ch, synced[ch.employee]) for ch in expiring if ch.channel_id not in orphan_ids]
    renew_now = [(ch, cal) for ch, cal in renew if ch.employee not in fresh]
    superseded = [ch for ch, _ in renew if ch.employee in fresh]
    missing = [cal for e, cal in sorted(synced.items()) if e not in covered]

    def keep(employee: str) -> bool:
        return wanted is None or employee.upper() in wanted

    return Due(
        [c for c in missing if keep(c.employee)],
        [(ch, cal) for ch, cal in renew_now if keep(ch.employee)],
        [ch for ch in orphaned + superseded if keep(ch.employee)],
    )


class ChannelKeeper:
    """Opens, renews and stops the channels of the employees' calendars through one Google client."""

    def __init__(
        self,
        google: GoogleCalendarClient,
        hub: Hub,
        settings: Settings,
        *,
        on_failure: OnFailure | None = None,
        on_recovered: OnRecovered | None = None,
    ) -> None:
        self.google = google
        self.hub = hub
        self.settings = settings
        self.on_failure = on_failure or (lambda employee, channel_id, error: None)
        self.on_recovered = on_recovered or (lambda employee: None)

    @property
    def address(self) -> str | None:
        return push_address(self.settings)

    # -- the run's maintenance -----------------------------------------------------------------
    def maintain(self, only: Iterable[str] | None = None) -> Report:
        """Bring every employee's channel in order (or only these employees')."""
        address = self.address
        if address is None:
            return Report(push=False)
        report = Report()
        work = due(self.hub, self.settings.sync.channel_renew_margin_s, only)
        for channel in work.orphaned:
            self._stop_quietly(channel, "employee_left" if self._left(channel.employee) else "superseded", report)
        for cal in work.missing:
            try:
                self.open(cal.employee, cal.email or "", cal.calendar_id or "", address)
            except Exception as exc:
                self._failed(report, cal.employee, None, exc)
                continue
            report.created.append(cal.employee)
            self.on_recovered(cal.employee)
        for channel, cal in work.expiring:
            self._renew(channel, cal, address, report)
        if not report.quiet():
            log.info("google channels: %s", report.as_dict())
        return report

    def _left(self, employee: str) -> bool:
        with self.hub.transaction() as conn:
            row = hub_calendars.get(conn, employee)
        return row is None or not row.active

    def _renew(
        self, old: hub_channels.Channel, cal: hub_calendars.EmployeeCalendar, address: str, report: Report
    ) -> None:
        expired = old.expires_at <= datetime.now(UTC)
        try:
            self.open(cal.employee, cal.email or "", cal.calendar_id or "", address)
        except Exception as exc:
            with self.hub.transaction() as conn:
                hub_channels.note_failure(conn, old.channel_id, _error_class(exc))
            self._failed(report, cal.employee, old.channel_id, exc)
            return
        self.on_recovered(cal.employee)
        if expired:  # Google dropped it silently: nothing to stop
            with self.hub.transaction() as conn:
                hub_channels.stop(conn, old.channel_id, "expired")
            report.recreated.append(cal.employee)
            return
        outcome = self._stop_quietly(old, "renewed", report)
        (report.recreated if outcome == "unknown_to_google" else report.renewed).append(cal.employee)

    def _failed(self, report: Report, employee: str, channel_id: str | None, exc: BaseException) -> None:
        error = _error_class(exc)
        report.failed[employee] = error
        log.warning("google channel of %s not opened (%s)", employee, error)
        self.on_failure(employee, channel_id, error)

    def _stop_quietly(self, channel: hub_channels.Channel, reason: str, report: Report) -> str | None:
        if channel.expires_at <= datetime.now(UTC):  # Google ended it already: nothing to ask (a left
            with self.hub.transaction() as conn:  # employee's account may be gone too)
                hub_channels.stop(conn, channel.channel_id, "expired")
            if reason == "employee_left":
                report.stopped.append(channel.employee)
            return "expired"
        try:
            outcome = self.stop(channel, reason)
        except Exception as exc:  # tried again at the next run: the channel stays active in the hub
            log.warning(
                "google channel %s of %s not stopped (%s)", channel.channel_id, channel.employee, _error_class(exc)
            )
            return None
        if reason == "employee_left":
            report.stopped.append(channel.employee)
        return outcome

    # -- single operations (also the CLI's) ------------------------------------------------------
    def open(self, employee: str, email: str, calendar_id: str, address: str | None = None) -> hub_channels.Channel:
        """events.watch on the employee's calendar; the channel is recorded once Google granted it."""
        address = address or self.address
        if not address:
            raise RuntimeError("push is off: GATEWAY_PUBLIC_URL is empty or GOOGLE_PUSH_ENABLED is false")
        channel_id = f"kanzlei-{uuid.uuid4()}"
        token = secrets.token_urlsafe(32)
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": token,
            "params": {"ttl": str(int(self.settings.sync.channel_ttl_s))},
        }
        session = self.google.session_for(email)
        answer = session.execute(lambda s: s.events().watch(calendarId=calendar_id, body=body), "events.watch")
        expires_at = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC)
        with self.hub.transaction() as conn:
            hub_channels.add(
                conn,
                channel_id=channel_id,
                employee=employee,
                calendar_id=calendar_id,
                resource_id=answer.get("resourceId"),
                token=token,
                address=address,
                expires_at=expires_at,
            )
            channel = hub_channels.get(conn, channel_id)
        log.info(
            "google channel %s opened for %s (calendar %s, until %s)",
            channel_id,
            employee,
            calendar_id,
            expires_at.isoformat(timespec="seconds"),
        )
        assert channel is not None
        return channel

    def stop(self, channel: hub_channels.Channel, reason: str) -> str:
        """channels.stop, then the hub's record: "stopped", or "unknown_to_google" (404: it was gone)."""
        with self.hub.transaction() as conn:
            row = hub_calendars.get(conn, channel.employee)
        session = self.google.session_for(row.email if row else None)
        body = {"id": channel.channel_id, "resourceId": channel.resource_id or ""}
        outcome = "stopped"
        try:
            session.execute(lambda s: s.channels().stop(body=body), "channels.stop")
        except HttpError as exc:
            if error_info(exc).status != 404:
                raise
            outcome = "unknown_to_google"
        with self.hub.transaction() as conn:
            hub_channels.stop(conn, channel.channel_id, reason if outcome == "stopped" else outcome)
        log.info("google channel %s of %s stopped (%s, %s)", channel.channel_id, channel.employee, reason, outcome)
        return outcome

    def renew(self, employee: str) -> hub_channels.Channel:
        """Now, whatever the expiry (the CLI): a new channel, then the old ones stopped."""
        with self.hub.transaction() as conn:
            cal = hub_calendars.get(conn, employee)
            old = hub_channels.active(conn, employee)
        if cal is None or not cal.calendar_id or not cal.email:
            raise LookupError(f"employee {employee} has no provisioned calendar")
        new = self.open(employee, cal.email, cal.calendar_id)
        for channel in old:
            self.stop(channel, "renewed")
        self.on_recovered(employee)
        return new


def _error_class(exc: BaseException) -> str:
    if isinstance(exc, HttpError):
        info = error_info(exc)
        return f"HttpError {info.status} {info.reason or ''}".strip()
    return type(exc).__name__
