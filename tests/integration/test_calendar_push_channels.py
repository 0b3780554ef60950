"""The life of the employees' Google watch channels (include/calendar_push/channels.py) against the
Google sandbox and the real hub: created for existing calendars, renewed before expiry (new first,
then the old stopped), stopped when an employee leaves, recreated when Google no longer knows one,
nothing at all with push off; and the alert of a channel that cannot be renewed, once per incident."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from include.airflow_provider.notifiers.alerts import on_channel_failure, on_channel_recovered
from include.alerts import Incidents
from include.calendar_push.channels import ChannelKeeper, Report
from include.calendar_sync.calendars import provision
from include.calendar_sync.context import SyncContext
from include.hub import calendars as hub_calendars
from include.hub import channels as hub_channels
from include.settings import GatewaySettings, GoogleSettings, Settings, SyncSettings
from tests.calendar_helpers import faults, make_ctx
from tests.push_helpers import Receiver, running_receiver, wait_for

EMAILS = {"AB": "ab@kanzlei.example", "CD": "cd@kanzlei.example"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> Iterator[SyncContext]:
    c = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path, google_retries=1)
    with c.hub.transaction() as conn:
        hub_calendars.record_employees(conn, EMAILS, set(EMAILS))
    for employee, email in EMAILS.items():
        provision(c.google, c.hub, employee, email)
    yield c
    c.close()


def push_settings(ctx: SyncContext, receiver: Receiver | None, *, enabled: bool = True, **sync: Any) -> Settings:
    base = receiver.url.removesuffix("/webhooks/google/calendar") if receiver else ""
    google = GoogleSettings(**{**ctx.settings.google.model_dump(), "push_enabled": enabled})
    return ctx.settings.model_copy(
        update={
            "gateway": GatewaySettings(_env_file=None, public_url=base),
            "google": google,
            "sync": SyncSettings(_env_file=None, **{**ctx.settings.sync.model_dump(), **sync}),
        }
    )


def keeper(ctx: SyncContext, receiver: Receiver | None, **kw: Any) -> tuple[ChannelKeeper, list[tuple[str, str]]]:
    failures: list[tuple[str, str]] = []
    k = ChannelKeeper(
        ctx.google,
        ctx.hub,
        push_settings(ctx, receiver, **kw),
        on_failure=lambda employee, channel_id, error: failures.append((employee, error)),
    )
    return k, failures


def active(ctx: SyncContext, employee: str | None = None) -> list[hub_channels.Channel]:
    with ctx.hub.transaction() as conn:
        return hub_channels.active(conn, employee)


def channel(ctx: SyncContext, channel_id: str) -> hub_channels.Channel:
    with ctx.hub.transaction() as conn:
        found = hub_channels.get(conn, channel_id)
    assert found is not None
    return found


def google_channels(google_url: str) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in httpx.get(f"{google_url}/_sandbox/push", timeout=10).json()["channels"]}


def watches(google_url: str) -> int:
    return int(httpx.get(f"{google_url}/_sandbox/push", timeout=10).json()["counts"].get("channels_opened", 0))


def test_push_off_opens_no_channel(ctx: SyncContext, google_url: str, receiver: Receiver) -> None:
    assert keeper(ctx, None)[0].maintain() == Report(push=False)  # no GATEWAY_PUBLIC_URL
    assert keeper(ctx, receiver, enabled=False)[0].maintain() == Report(push=False)  # GOOGLE_PUSH_ENABLED=false
    assert active(ctx) == [] and google_channels(google_url) == {}


def test_every_existing_calendar_gets_a_channel_and_a_quiet_run_asks_google_nothing(
    ctx: SyncContext, google_url: str, receiver: Receiver
) -> None:
    k, failures = keeper(ctx, receiver)
    report = k.maintain()
    assert sorted(report.created) == ["AB", "CD"] and not failures
    chans = {c.employee: c for c in active(ctx)}
    with ctx.hub.transaction() as conn:
        calendars = {e: hub_calendars.get(conn, e) for e in EMAILS}
    for employee, ch in chans.items():
        assert ch.calendar_id == calendars[employee].calendar_id  # type: ignore[union-attr]
        assert ch.address == receiver.url
        google = google_channels(google_url)[ch.channel_id]
        assert google["state"] == "active" and google["calendarId"] == ch.calendar_id
        assert google["resourceId"] == ch.resource_id
        (sync,) = wait_for(lambda c=ch: receiver.of(c.channel_id), what="the sync message")
        assert sync.headers["X-Goog-Channel-Token"] == ch.token  # the per-channel secret Google echoes
    assert chans["AB"].token != chans["CD"].token

    opened = watches(google_url)
    again = k.maintain()
    assert again.quiet() and watches(google_url) == opened == 2


def test_a_channel_expiring_soon_is_renewed_new_first_then_the_old_stopped(
    ctx: SyncContext, google_url: str, receiver: Receiver
) -> None:
    keeper(ctx, receiver)[0].maintain()
    old = {c.employee: c for c in active(ctx)}
    # a week's margin: every channel (granted a week at most) is due
    report = keeper(ctx, receiver, channel_renew_margin_s=8 * 86400)[0].maintain(["AB"])
    assert report.renewed == ["AB"] and report.created == []
    (new,) = active(ctx, "AB")
    assert new.channel_id != old["AB"].channel_id
    stopped = channel(ctx, old["AB"].channel_id)
    assert stopped.state == "stopped" and stopped.stop_reason == "renewed"
    assert new.created_at <= stopped.stopped_at  # type: ignore[operator]  # the overlap: new before old ends
    google = google_channels(google_url)
    assert google[old["AB"].channel_id]["state"] == "stopped" and google[new.channel_id]["state"] == "active"
    assert active(ctx, "CD") == [old["CD"]]  # not named: untouched


def test_an_employee_who_leaves_has_the_channel_stopped(ctx: SyncContext, google_url: str, receiver: Receiver) -> None:
    k, _ = keeper(ctx, receiver)
    k.maintain()
    (ab,) = active(ctx, "AB")
    with ctx.hub.transaction() as conn:
        hub_calendars.record_employees(conn, EMAILS, {"CD"})  # AB is no longer aktiv in Advoware
    report = k.maintain()
    assert report.stopped == ["AB"] and report.created == []
    assert channel(ctx, ab.channel_id).stop_reason == "employee_left"
    assert google_channels(google_url)[ab.channel_id]["state"] == "stopped"
    assert [c.employee for c in active(ctx)] == ["CD"]


def test_an_expired_channel_of_an_employee_who_left_is_closed_without_asking_google(
    ctx: SyncContext, google_url: str, hub: str, receiver: Receiver
) -> None:
    k, _ = keeper(ctx, receiver)
    k.maintain()
    (ab,) = active(ctx, "AB")
    with psycopg.connect(hub) as conn:
        conn.execute(
            "UPDATE calendar_channels SET expires_at = now() - interval '1 minute' WHERE channel_id = %s",
            (ab.channel_id,),
        )
    with ctx.hub.transaction() as conn:
        hub_calendars.record_employees(conn, EMAILS, {"CD"})
    faults(google_url, {"match": "channels.stop", "status": 500})  # any call would fail
    assert k.maintain().stopped == ["AB"]
    assert channel(ctx, ab.channel_id).stop_reason == "expired"


def test_a_channel_google_no_longer_knows_is_recreated(ctx: SyncContext, google_url: str, receiver: Receiver) -> None:
    keeper(ctx, receiver)[0].maintain()
    (ab,) = active(ctx, "AB")
    # Google dropped it (stopped elsewhere): the renewal's channels.stop answers 404
    ctx.google.session_for(EMAILS["AB"]).execute(
        lambda s: s.channels().stop(body={"id": ab.channel_id, "resourceId": ab.resource_id}), "channels.stop"
    )
    report = keeper(ctx, receiver, channel_renew_margin_s=8 * 86400)[0].maintain(["AB"])
    assert report.recreated == ["AB"]
    assert channel(ctx, ab.channel_id).stop_reason == "unknown_to_google"
    (new,) = active(ctx, "AB")
    assert google_channels(google_url)[new.channel_id]["state"] == "active"


def test_a_channel_that_expired_unrenewed_is_recreated(
    ctx: SyncContext, google_url: str, hub: str, receiver: Receiver
) -> None:
    k, _ = keeper(ctx, receiver)
    k.maintain()
    (ab,) = active(ctx, "AB")
    httpx.post(f"{google_url}/_sandbox/push/expire", json={"id": ab.channel_id}, timeout=10).raise_for_status()
    with psycopg.connect(hub) as conn:  # the hub's clock agrees: it expired (Google says nothing then)
        conn.execute(
            "UPDATE calendar_channels SET expires_at = now() - interval '1 minute' WHERE channel_id = %s",
            (ab.channel_id,),
        )
    report = k.maintain()
    assert report.recreated == ["AB"]
    assert channel(ctx, ab.channel_id).stop_reason == "expired"
    (new,) = active(ctx, "AB")
    assert google_channels(google_url)[new.channel_id]["state"] == "active"


def test_a_calendar_made_anew_gets_a_channel_on_the_new_calendar(
    ctx: SyncContext, google_url: str, receiver: Receiver
) -> None:
    k, _ = keeper(ctx, receiver)
    k.maintain()
    (ab,) = active(ctx, "AB")
    made = ctx.google.session_for(None).execute(
        lambda s: s.calendars().insert(body={"summary": "Advoware – AB"}), "calendars.insert"
    )
    with ctx.hub.transaction() as conn:  # what provisioning records when the old calendar was deleted
        hub_calendars.upsert_calendar(
            conn, "AB", email=EMAILS["AB"], calendar_id=made["id"], mode="shared", acl_rule_id=None
        )
    report = k.maintain()
    assert report.created == ["AB"]
    (new,) = active(ctx, "AB")
    assert new.calendar_id == made["id"] != ab.calendar_id
    assert channel(ctx, ab.channel_id).stop_reason == "superseded"
    assert google_channels(google_url)[new.channel_id]["calendarId"] == made["id"]


def test_a_renewal_that_fails_is_noted_on_the_channel_and_reported(
    ctx: SyncContext, google_url: str, receiver: Receiver
) -> None:
    keeper(ctx, receiver)[0].maintain()
    (ab,) = active(ctx, "AB")
    faults(google_url, {"match": "events.watch", "status": 400, "reason": "badRequest"})
    k, failures = keeper(ctx, receiver, channel_renew_margin_s=8 * 86400)
    report = k.maintain(["AB"])
    assert list(report.failed) == ["AB"] and failures == [("AB", "HttpError 400 badRequest")]
    still = channel(ctx, ab.channel_id)
    assert still.state == "active" and still.failures == 1 and still.failing_since is not None
    k.maintain(["AB"])
    assert channel(ctx, ab.channel_id).failures == 2
    faults(google_url)  # Google takes watches again
    assert k.maintain(["AB"]).renewed == ["AB"]


def test_a_channel_that_cannot_be_renewed_alerts_once_per_incident(redis_url: str, smtp_sink: Any) -> None:
    incidents = Incidents(redis.Redis.from_url(redis_url))
    on_channel_failure("AB", "kanzlei-1", "HttpError 400 badRequest", incidents)
    on_channel_failure("AB", "kanzlei-1", "HttpError 400 badRequest", incidents)  # the next run: same incident
    assert len(smtp_sink.messages) == 1
    assert "Google push for AB" in smtp_sink.messages[0]["Subject"]
    on_channel_failure("CD", None, "TimeoutError", incidents)  # another employee: another incident
    assert len(smtp_sink.messages) == 2
    on_channel_recovered("AB", incidents)
    on_channel_failure("AB", "kanzlei-2", "HttpError 403 forbidden", incidents)  # a new incident
    assert len(smtp_sink.messages) == 3


# -- operations: the status view and the command line ---------------------------------------------
def test_the_status_view_shows_each_employees_channel_and_last_notification(
    ctx: SyncContext, hub: str, receiver: Receiver
) -> None:
    from include.hub.status import read_status
    from include.status.page import render
    from include.status.queries import Sources, collect

    with ctx.hub.transaction() as conn:
        hub_calendars.record_employees(conn, {**EMAILS, "EF": "ef@kanzlei.example"}, {*EMAILS, "EF"})
    keeper(ctx, receiver)[0].maintain(["AB", "CD"])  # EF has no calendar yet: no channel
    ab, cd = active(ctx, "AB")[0], active(ctx, "CD")[0]
    with ctx.hub.transaction() as conn:
        hub_channels.note_notification(conn, cd.channel_id, 7)
        hub_channels.note_failure(conn, ab.channel_id, "HttpError 403 forbidden")

    status = read_status(hub, channel_margin_s=0)
    chans = {row["employee"]: row["channel"] for row in status["employees"]}
    assert chans["AB"]["state"] == "failing" and chans["AB"]["last_error"] == "HttpError 403 forbidden"
    assert chans["CD"]["state"] == "active" and chans["CD"]["last_notification_at"] is not None
    assert chans["CD"]["channel_id"] == cd.channel_id
    assert chans["EF"]["state"] == "none"
    assert read_status(hub, channel_margin_s=8 * 86400)["employees"][1]["channel"]["state"] == "expiring"

    page = render(collect(Sources(hub)))  # what the plugin serves
    assert "failing" in page and "HttpError 403 forbidden" in page and "last notification" in page
    assert ab.token not in page and cd.token not in page  # the channel secrets never leave the hub


def test_the_command_line_lists_renews_and_stops_channels(
    ctx: SyncContext, google_url: str, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from include.cli import main

    settings = push_settings(ctx, receiver)
    assert main(["channels", "renew"], settings=settings) == 0  # none given: what is due (all missing)
    assert sorted(c.employee for c in active(ctx)) == ["AB", "CD"]
    capsys.readouterr()

    assert main(["channels", "list", "--json"], settings=settings) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted((r["employee"], r["state"]) for r in listed) == [("AB", "active"), ("CD", "active")]
    assert all("token" not in r for r in listed)

    (old_ab,) = active(ctx, "AB")
    assert main(["channels", "renew", "AB"], settings=settings) == 0
    (new_ab,) = active(ctx, "AB")
    assert new_ab.channel_id != old_ab.channel_id
    assert channel(ctx, old_ab.channel_id).stop_reason == "renewed"

    (cd,) = active(ctx, "CD")
    assert main(["channels", "stop", "CD"], settings=settings) == 0
    assert f"channel {cd.channel_id} stopped" in capsys.readouterr().out
    assert active(ctx, "CD") == [] and google_channels(google_url)[cd.channel_id]["state"] == "stopped"

    assert main(["channels", "list", "--all"], settings=settings) == 0
    out = capsys.readouterr().out
    assert "push: on" in out and "operator" in out and "renewed" in out

    off = push_settings(ctx, None)
    assert main(["channels", "renew", "AB"], settings=off) == 2  # push off: nothing to renew


def test_the_calendar_runs_planning_opens_the_channels_of_new_calendars_and_a_quiet_run_opens_none(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path, receiver: Receiver
) -> None:
    from include.calendar_sync.planning import plan_employees
    from include.calendar_sync.prepare import RunParams
    from tests.calendar_helpers import seed_firm

    seed_firm(advoware_url, employees=2, per_employee=2)
    plain = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    c = SyncContext(hub, plain.advoware, plain.google, push_settings(plain, receiver))
    try:
        plan_employees(c, "run-1", RunParams())  # first run: calendars provisioned, then their channels
        employees = sorted(m["kuerzel"] for m in c.advoware.list_mitarbeiter())
        assert sorted(ch.employee for ch in active(c)) == employees
        for ch in active(c):
            wait_for(lambda ch=ch: receiver.of(ch.channel_id), what="the sync message")
        plan_employees(c, "run-2", RunParams())
        assert watches(google_url) == len(employees)  # nothing new asked of Google
    finally:
        c.close()
        plain.close()


def test_the_calendar_runs_planning_with_push_off_opens_no_channel(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path
) -> None:
    from include.calendar_sync.planning import plan_employees
    from include.calendar_sync.prepare import RunParams
    from tests.calendar_helpers import seed_firm

    seed_firm(advoware_url, employees=2, per_employee=2)
    plain = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    c = SyncContext(hub, plain.advoware, plain.google, push_settings(plain, None))  # GATEWAY_PUBLIC_URL empty
    try:
        plan_employees(c, "run-1", RunParams())
        assert active(c) == [] and google_channels(google_url) == {}
    finally:
        c.close()
        plain.close()
