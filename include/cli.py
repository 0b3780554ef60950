"""`kanzlei-sync`: the operator's command line (a thin dispatcher; each command lives in a small function).

  kanzlei-sync check [--only SERVICE] [--employee K] one harmless read per service: verdict and fix
  kanzlei-sync migrate                               bring the sync hub's tables up to date (Alembic)
  kanzlei-sync register-webhooks [--gateway-url URL] register CBeteiligte.create/update/delete in EspoCRM
  kanzlei-sync dead-letters list [--all] [--source S] [--limit N] [--json]
  kanzlei-sync dead-letters replay ID [--no-trigger]
  kanzlei-sync drain [--once] [--batch-size N] ...   drain the party queue outside Airflow
  kanzlei-sync calendar recover --employee KUERZEL   rebuild an employee's calendar links (lost hub)
  kanzlei-sync calendar resolve-stop --employee KUERZEL refill|confirm [--here]
                                                     answer a safety stop: refill Google, or confirm deletions
  kanzlei-sync channels list [--all] [--json]        Google watch channels: state, expiry, last notification
  kanzlei-sync channels renew [EMPLOYEE...]          renew these employees' channels now (none: what is due)
  kanzlei-sync channels stop EMPLOYEE...             stop these employees' channels (channels.stop)
  kanzlei-sync show settings|connections             what .env amounts to, secrets masked
  kanzlei-sync airflow passwords-file PATH           the Airflow login file for AIRFLOW_API_USER/PASSWORD
  kanzlei-sync airflow users                         FAB: roles and named users from .env (compose init)
  kanzlei-sync airflow exec COMMAND [ARGS...]        run an Airflow component with its connections

To add a command: write `def _cmd_x(args, settings) -> int`, and register its parser in `build_parser`
with `set_defaults(func=_cmd_x)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from include.settings import Settings, get_settings

WEBHOOK_EVENTS = ("create", "update", "delete")
SERVICES = ("advoware", "google", "espocrm", "hub", "redis", "airflow", "smtp")  # include.checks.run


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from include.checks.run import passed, run_all
    from include.checks.verdict import render

    verdicts = run_all(settings, only=args.only, employees=args.employee)
    if args.json:
        print(json.dumps([v.as_dict() for v in verdicts], indent=2, ensure_ascii=False))
    else:
        print(render(verdicts))
    return 0 if passed(verdicts, strict=args.strict) else 1


def _cmd_register_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from include.espocrm.client import EspoCrmClient

    gateway = (args.gateway_url or settings.gateway.public_url).rstrip("/")
    if not gateway:
        print("error: give --gateway-url or set GATEWAY_PUBLIC_URL", file=sys.stderr)
        return 2
    entity = settings.espocrm.entity
    pairs: list[str] = []
    with EspoCrmClient.from_settings(settings.espocrm) as client:
        for event in WEBHOOK_EVENTS:
            url = f"{gateway}/webhooks/vmh/beteiligte/{event}"
            hook = client.register_webhook(f"{entity}.{event}", url, skip_own=True)
            pairs.append(f"{hook['id']}={hook['secretKey']}")
            print(f"registered {entity}.{event} -> {url} (webhook {hook['id']})", file=sys.stderr)
    print("# put this line into .env (one secret per webhook):", file=sys.stderr)
    print(f"ESPOCRM_WEBHOOK_SECRET={','.join(pairs)}")
    return 0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from include.hub.db import current_revision, ensure_database, heads, migrate

    dsn = _dsn(settings)
    ensure_database(dsn)  # a fresh deployment (compose's first start) has no hub database yet
    before = current_revision(dsn)
    migrate(dsn)
    after, expected = current_revision(dsn), heads()
    where = f"sync hub {settings.postgres.db} on {settings.postgres.host}:{settings.postgres.port}"
    if after not in expected:
        print(f"{where}: at revision {after}, expected one of {expected}", file=sys.stderr)
        return 1
    print(f"{where}: up to date (revision {after}{', was ' + str(before) if before != after else ''})")
    return 0


def _cmd_drain(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from include.parties.drain import work

    logging.basicConfig(level=settings.log_level, stream=sys.stderr)
    return work(
        settings,
        batch_size=args.batch_size or settings.sync.party_batch_size,
        lease_s=args.lease_s or float(settings.sync.party_lease_s),
        max_seconds=args.max_seconds,
        backoff_base_s=args.backoff_base_s,
        once=args.once,
        poll_s=args.poll_s,
    )


def _cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from include.airflow_env import airflow_env, masked, masked_url

    def urls_masked(value: Any) -> Any:  # a password inside a URL (REDIS_URL) is masked too
        if isinstance(value, dict):
            return {k: urls_masked(v) for k, v in value.items()}
        return masked_url(value) if isinstance(value, str) and "://" in value else value

    if args.what == "settings":
        # SecretStr fields dump as "**********"
        print(json.dumps(urls_masked(settings.model_dump(mode="json")), indent=2, sort_keys=True))
    else:
        for k, v in sorted(masked(airflow_env(settings)).items()):
            print(f"{k}={v}")
    return 0


def _cmd_airflow_passwords_file(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from include.airflow_env import write_passwords_file

    print(write_passwords_file(Path(args.path), settings))
    return 0


def _cmd_airflow_pools(args: argparse.Namespace, settings: Settings) -> int:
    """compose's airflow-init: the calendar DAG's API pools, created when missing."""
    from include.airflow_provider.deployment.pools import ensure

    for line in ensure():
        print(line)
    return 0


def _cmd_airflow_users(args: argparse.Namespace, settings: Settings) -> int:
    """compose's airflow-init (FAB auth manager): the roles and the users of AIRFLOW_UI_USERS, and the
    gateway's own account; idempotent."""
    import logging

    from include.airflow_provider.deployment.users import ensure

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        for line in ensure(settings):
            print(line)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_airflow_exec(args: argparse.Namespace, settings: Settings) -> int:
    """docker-compose: every Airflow component starts through here, so its connections and variables
    come from the same .env as the gateway's. Replaces this process (signals reach Airflow)."""
    import os

    from include.airflow_env import airflow_env

    if not args.command_line:
        print("error: airflow exec needs a command", file=sys.stderr)
        return 2
    os.execvpe(args.command_line[0], args.command_line, {**os.environ, **airflow_env(settings)})
    return 0  # pragma: no cover (exec does not return)


def _dsn(settings: Settings) -> str:
    return settings.postgres.dsn()


def _drain_outbox(settings: Settings) -> None:
    """Parked dead letters still in Redis go to the hub first, so the list is complete."""
    from include.hub import dead_letters
    from include.hub.db import connect
    from include.queue.party_queue import PartyQueue

    def sink(entry: Mapping[str, Any]) -> None:
        with connect(_dsn(settings)) as conn:
            dead_letters.add_from_outbox(conn, entry)

    try:
        PartyQueue.from_settings(settings).drain_dead_letter_outbox(sink)
    except Exception as exc:  # Redis down: list what the hub has
        print(f"warning: dead-letter outbox in Redis not drained ({type(exc).__name__})", file=sys.stderr)


def _print_rows(
    rows: list[dict[str, Any]],
    line: Callable[[dict[str, Any]], str],
    *,
    json_rows: list[dict[str, Any]] | None,
    empty: str,
    heading: str | None = None,
) -> int:
    """A listing's output: `json_rows` as JSON when given, else the heading and a line per row."""
    if json_rows is not None:
        print(json.dumps(json_rows, indent=2, default=str))
        return 0
    if heading is not None:
        print(heading)
    if not rows:
        print(empty)
    for r in rows:
        print(line(r))
    return 0


def _trigger(dag_id: str, start: Callable[[], str], otherwise: str) -> bool:
    """Starts a run and prints what became of it; if Airflow refuses, a warning says what carries the
    work instead (`otherwise`) and the answer is False."""
    try:
        print(f"{dag_id}: {start()}")
    except Exception as exc:
        print(f"{dag_id} not triggered ({type(exc).__name__}); {otherwise}", file=sys.stderr)
        return False
    return True


def _cmd_dead_letters_list(args: argparse.Namespace, settings: Settings) -> int:
    from include.hub import dead_letters
    from include.hub.db import connect

    _drain_outbox(settings)
    with connect(_dsn(settings)) as conn:
        rows = dead_letters.list_(conn, include_replayed=args.all, source=args.source, limit=args.limit)

    def line(r: dict[str, Any]) -> str:
        state = f"replayed {r['replayed_at']:%Y-%m-%d %H:%M}" if r["replayed_at"] else "open"
        return (
            f"{r['id']:>6}  {r['created_at']:%Y-%m-%d %H:%M:%S}  {r['source']:<16} "
            f"{r['entity_id'] or '-':<20} attempts={r['attempts']:<3} {state:<24} {r['reason']}"
        )

    return _print_rows(
        rows, line, json_rows=[dead_letters.to_json(r) for r in rows] if args.json else None, empty="no dead letters"
    )


def _cmd_dead_letters_replay(args: argparse.Namespace, settings: Settings) -> int:
    from include.airflow_api import BETEILIGTE_SYNC_DAG, CALENDAR_SYNC_DAG, AirflowApi, trigger_calendar_retry
    from include.dead_letter_replay import replay
    from include.hub import dead_letters
    from include.hub.db import Hub
    from include.queue.party_queue import PartyQueue

    queue = PartyQueue.from_settings(settings)
    try:
        with Hub(_dsn(settings)) as hub:
            row = replay(hub, args.id, lambda ids: queue.enqueue(ids, "replay"))
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if row["source"] == dead_letters.CALENDAR_SOURCE:
        # a parked calendar item: its link starts again; a calendar run for its employee retries it
        print(f"dead letter {row['id']}: calendar item {row['entity_id']} released")
        employee = (row.get("payload") or {}).get("employee")
        if employee and not args.no_trigger:

            def calendar_run() -> str:
                run = trigger_calendar_retry(AirflowApi.from_settings(settings, queue.r), employee, row["id"])
                return f"run {run.dag_run_id} for {employee}"

            _trigger(CALENDAR_SYNC_DAG, calendar_run, "the next scheduled run retries it")
        return 0
    print(f"dead letter {row['id']}: id {row['entity_id']} queued again")

    def party_run() -> str:
        return AirflowApi.from_settings(settings, queue.r).trigger_coalesced(BETEILIGTE_SYNC_DAG).replace("_", " ")

    if not args.no_trigger:
        _trigger(BETEILIGTE_SYNC_DAG, party_run, "the scheduled sweep will pick it up")
    return 0


def _cmd_calendar_recover(args: argparse.Namespace, settings: Settings) -> int:
    from include.calendar_sync.context import SyncContext
    from include.calendar_sync.recovery import recover

    ctx = SyncContext.from_settings(settings)
    try:
        result = recover(ctx, args.employee)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        ctx.close()
    print(
        f"{result['employee']}: {result['linked']} links rebuilt from {result['events']} events "
        f"({result['differing']} differ; the next run writes Advoware's version to Google)"
    )
    return 0


def _channel_keeper(settings: Settings) -> Any:
    from include.airflow_provider.notifiers.alerts import on_channel_recovered
    from include.calendar_push.channels import ChannelKeeper
    from include.google_calendar.client import GoogleCalendarClient
    from include.hub.db import Hub

    def recovered(employee: str) -> None:
        try:  # the alert incident of a channel that failed ends; Redis down only costs a warning
            import redis

            from include.alerts import Incidents

            on_channel_recovered(employee, Incidents(redis.Redis.from_url(settings.redis_url, socket_timeout=5)))
        except Exception as exc:
            print(f"warning: alert incident not closed ({type(exc).__name__})", file=sys.stderr)

    google = GoogleCalendarClient.from_settings(settings.google, redis_url=settings.redis_url)
    return ChannelKeeper(google, Hub(_dsn(settings)), settings, on_recovered=recovered)


def _cmd_channels_list(args: argparse.Namespace, settings: Settings) -> int:
    from include.calendar_push.channels import push_address
    from include.hub import channels as hub_channels
    from include.hub.db import connect
    from include.hub.status import channels

    with connect(_dsn(settings)) as conn:
        rows: list[dict[str, Any]] = hub_channels.listing(conn, include_stopped=args.all)
        states = channels(conn, settings.sync.channel_renew_margin_s)
    for r in rows:  # active ones as the status view says them (expiring, failing, expired)
        current = states.get(r["employee"], {})
        if r["state"] == "active" and current.get("channel_id") == r["channel_id"]:
            r["state"] = current["state"]
    address = push_address(settings)
    off = "off (GATEWAY_PUBLIC_URL empty or GOOGLE_PUSH_ENABLED=false)"

    def line(r: dict[str, Any]) -> str:
        last = f"{r['last_notification_at']:%Y-%m-%d %H:%M:%S}" if r["last_notification_at"] else "-"
        return (
            f"{r['employee']:<8} {r['channel_id']:<46} {r['state']:<9} expires {r['expires_at']:%Y-%m-%d %H:%M} "
            f"last notification {last}"
            + (f" failures={r['failures']} ({r['last_error']})" if r["failures"] else "")
            + (f" {r['stop_reason']}" if r["stop_reason"] else "")
        )

    return _print_rows(
        rows,
        line,
        json_rows=rows if args.json else None,
        empty="no channels",
        heading=f"push: {'on, Google posts to ' + address if address else off}",
    )


def _cmd_channels_renew(args: argparse.Namespace, settings: Settings) -> int:
    from include.calendar_push.channels import push_address

    if push_address(settings) is None:
        print("error: push is off (set GATEWAY_PUBLIC_URL; GOOGLE_PUSH_ENABLED=true)", file=sys.stderr)
        return 2
    keeper = _channel_keeper(settings)
    try:
        if not args.employees:
            report = keeper.maintain()
            print(json.dumps(report.as_dict()))
            return 1 if report.failed else 0
        failed = 0
        for employee in args.employees:
            try:
                channel = keeper.renew(employee)
            except Exception as exc:
                print(f"{employee}: not renewed ({type(exc).__name__}: {exc})", file=sys.stderr)
                failed += 1
                continue
            print(f"{employee}: channel {channel.channel_id} until {channel.expires_at:%Y-%m-%d %H:%M} UTC")
        return 1 if failed else 0
    finally:
        keeper.hub.close()


def _cmd_channels_stop(args: argparse.Namespace, settings: Settings) -> int:
    from include.hub import channels as hub_channels

    keeper = _channel_keeper(settings)
    try:
        for employee in args.employees:
            with keeper.hub.transaction() as conn:
                active = hub_channels.active(conn, employee)
            if not active:
                print(f"{employee}: no active channel")
            for channel in active:
                outcome = keeper.stop(channel, "operator")
                print(f"{employee}: channel {channel.channel_id} {outcome.replace('_', ' ')}")
    finally:
        keeper.hub.close()
    if settings.gateway.public_url and settings.google.push_enabled:
        print("note: push is on: the next calendar run opens a new channel for an active employee")
    return 0


def _cmd_calendar_resolve_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Answer an employee's safety stop: trigger the calendar run (as the status view's buttons do),
    or with --here run it in this process (Airflow down)."""
    from include.hub.db import connect
    from include.safety_stop import ACTIONS, stop_run, stopped_run

    with connect(_dsn(settings)) as conn:
        stopped = stopped_run(conn, args.employee)
    if stopped is None:
        print(
            f"error: the latest calendar run of {args.employee} did not stop for safety: nothing to answer",
            file=sys.stderr,
        )
        return 2
    print(f"{args.employee}: run {stopped['run_id']} stopped: {stopped['error']}")
    run = stop_run(args.employee, args.action, stopped["run_id"])
    if args.here:
        return _resolve_here(settings, args.employee, args.action, ACTIONS[args.action])
    from include.airflow_api import AirflowApi

    def answer_run() -> str:
        result = AirflowApi.from_settings(settings).trigger(run.dag_id, run.conf, dag_run_id=run.run_id, note=run.note)
        flags = ", ".join(k for k, v in run.conf.items() if v is True)
        return f"run {run.run_id} for {args.employee} {'started' if result.created else 'was started before'} ({flags})"

    return 0 if _trigger(run.dag_id, answer_run, "with Airflow down, run it here: add --here") else 1


def _resolve_here(settings: Settings, employee: str, action: str, params: dict[str, bool]) -> int:
    from include.calendar_sync.context import SyncContext
    from include.calendar_sync.executor import reason_of
    from include.calendar_sync.prepare import RunParams
    from include.calendar_sync.report import table
    from include.calendar_sync.runner import new_run_id, sync_employee

    ctx = SyncContext.from_settings(settings)
    run_id = new_run_id(action)
    try:
        result = sync_employee(ctx, run_id, employee, RunParams(**params))
    except Exception as exc:
        print(f"error: the {action} run of {employee} failed: {reason_of(exc)}", file=sys.stderr)
        return 1
    finally:
        ctx.close()
    print(table(_dsn(settings), run_id))
    return 0 if result["status"] == "success" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kanzlei-sync", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "check",
        help="one harmless read per configured service: a verdict and the fix each (exit 0 only when none failed)",
    )
    p.add_argument("--only", action="append", choices=SERVICES, help="only this service (repeatable)")
    p.add_argument("--employee", action="append", help="check delegation only for this Kürzel (repeatable)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--strict", action="store_true", help="a skip (something not configured) fails too")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("migrate", help="bring the sync hub's tables up to date")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser("register-webhooks", help="register the EspoCRM webhooks and print their secrets")
    p.add_argument("--gateway-url", help="public base URL of the webhook gateway (default GATEWAY_PUBLIC_URL)")
    p.set_defaults(func=_cmd_register_webhooks)

    dl = sub.add_parser("dead-letters", help="list or replay dead letters").add_subparsers(dest="action", required=True)
    p = dl.add_parser("list", help="open dead letters (oldest first)")
    p.add_argument("--all", action="store_true", help="include replayed ones")
    p.add_argument("--source", help="webhook | beteiligte_sync | calendar_sync")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_dead_letters_list)
    p = dl.add_parser(
        "replay",
        help="queue a dead letter's id again and trigger a sync run (a parked "
        "calendar item: release it and trigger a calendar run for its employee)",
    )
    p.add_argument("id", type=int)
    p.add_argument("--no-trigger", action="store_true", help="only queue it; the sweep picks it up")
    p.set_defaults(func=_cmd_dead_letters_replay)

    cal = sub.add_parser("calendar", help="calendar sync tools").add_subparsers(dest="action", required=True)
    p = cal.add_parser("recover", help="rebuild an employee's hub links from Google's markers and Advoware")
    p.add_argument("--employee", required=True, help="Advoware Kürzel")
    p.set_defaults(func=_cmd_calendar_recover)
    p = cal.add_parser(
        "resolve-stop",
        help="answer a safety stop (e.g. a calendar emptied in Google): refill "
        "Google from Advoware, or confirm the deletions",
    )
    p.add_argument("--employee", required=True, help="Advoware Kürzel")
    p.add_argument(
        "action",
        choices=("refill", "confirm"),
        help="refill: make again in Google what was deleted there; confirm: carry the deletions",
    )
    p.add_argument("--here", action="store_true", help="run it in this process instead of triggering Airflow")
    p.set_defaults(func=_cmd_calendar_resolve_stop)

    ch = sub.add_parser("channels", help="Google watch channels (push notifications)").add_subparsers(
        dest="action", required=True
    )
    p = ch.add_parser("list", help="the channels the hub records (active ones; --all: stopped ones too)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_channels_list)
    p = ch.add_parser(
        "renew",
        help="open new channels for these employees now and stop the old ones; "
        "without employees: create the missing and renew the due ones, as the calendar run does",
    )
    p.add_argument("employees", nargs="*", metavar="EMPLOYEE")
    p.set_defaults(func=_cmd_channels_renew)
    p = ch.add_parser("stop", help="stop these employees' channels at Google and in the hub")
    p.add_argument("employees", nargs="+", metavar="EMPLOYEE")
    p.set_defaults(func=_cmd_channels_stop)

    p = sub.add_parser("drain", help="drain the party queue into Advoware outside Airflow (JSON lines)")
    p.add_argument("--once", action="store_true", help="one drain, then exit (else: poll until killed)")
    p.add_argument("--batch-size", type=int, help="default SYNC_PARTY_BATCH_SIZE")
    p.add_argument("--lease-s", type=float, help="default SYNC_PARTY_LEASE_S")
    p.add_argument("--max-seconds", type=float, default=600.0, help="one drain's time limit")
    p.add_argument("--backoff-base-s", type=float, default=30.0, help="first retry delay of a failed id")
    p.add_argument("--poll-s", type=float, default=1.0, help="wait between empty drains")
    p.set_defaults(func=_cmd_drain)

    p = sub.add_parser("show", help="the settings, or Airflow's connections and variables, secrets masked")
    p.add_argument("what", choices=("settings", "connections"))
    p.set_defaults(func=_cmd_show)

    af = sub.add_parser("airflow", help="start Airflow with the project's settings (docker-compose)")
    af_sub = af.add_subparsers(dest="action", required=True)
    p = af_sub.add_parser("passwords-file", help="write the SimpleAuthManager password file (0600)")
    p.add_argument("path")
    p.set_defaults(func=_cmd_airflow_passwords_file)
    p = af_sub.add_parser(
        "users",
        help="FAB auth manager: the roles Sync Viewer / Operator / Gateway, the users "
        "of AIRFLOW_UI_USERS and the gateway's account (compose's airflow-init)",
    )
    p.set_defaults(func=_cmd_airflow_users)
    p = af_sub.add_parser("pools", help="the calendar DAG's API pools, created when missing (compose's airflow-init)")
    p.set_defaults(func=_cmd_airflow_pools)
    p = af_sub.add_parser("exec", help="run COMMAND with AIRFLOW_CONN_* / AIRFLOW_VAR_* from .env")
    p.add_argument("command_line", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.set_defaults(func=_cmd_airflow_exec)
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args, settings or get_settings()))


if __name__ == "__main__":
    sys.exit(main())
