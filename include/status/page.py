"""The status dict (include.status.queries.collect) as one self-contained HTML page.

Every value goes through `html.escape`, whatever its source: ids and error texts come from systems
we do not control. No scripts, no external assets (the page runs in an iframe of the Airflow UI
under a strict Content-Security-Policy); it reloads itself every REFRESH_S seconds. The chart is
inline SVG (include.status.chart).

Times: UTC everywhere, said in the header and on every time (Airflow stores and serves UTC; its UI
shows the zone picked in its user menu, the browser's by default). Width: the page fits the Airflow
UI's frame on a 1280 px screen: tables take the frame's width, long ids and errors wrap, and a table
that still cannot fit scrolls inside its own box instead of widening the page.

`Links` (from the host, the Airflow plugin) adds what needs Airflow: each employee's latest task
instance log, the party run's log, the runs a replay (or a stop's answer) started, and the forms: a
dead letter's replay, and the two answers to an employee's safety stop (POST with a per-page CSRF
token); without it the page is read-only and links nowhere.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from include.hub.status import PARTY_STATUSES, SHOWN_LINK_STATUSES
from include.safety_stop import LABELS as STOP_LABELS
from include.status.chart import bar_chart

TZ = UTC
TZ_NAME = "UTC"
REFRESH_S = 60

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:12px;color:#1a1a1a;background:#fff;max-width:100%}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px}h3{font-size:14px;margin:12px 0 4px}
.tw{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin-bottom:8px;width:100%}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f4f4f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.err,td.id{overflow-wrap:anywhere}td.err{min-width:8em;max-width:22em}td.id{max-width:16em}
.ago{display:block;font-size:12px}
.muted{color:#666}.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.warn{color:#a15c00}
.banner{background:#fdecea;border:1px solid #f5c2c0;padding:8px;margin:8px 0}
.notice{background:#e8f4ea;border:1px solid #b7dcbf;padding:8px;margin:8px 0}
code{font-size:12px;overflow-wrap:anywhere}
form{margin:0}button{font:inherit;padding:1px 8px;cursor:pointer}
.charts{display:flex;flex-wrap:wrap;gap:16px}.charts figure{margin:0;flex:1 1 420px;max-width:600px}
figcaption{font-weight:600;margin-bottom:2px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#ddd;stroke-width:1}svg text{font:11px system-ui,sans-serif;fill:#444}
svg .legend{font-size:12px;fill:#1a1a1a}svg .value{font-size:10px;fill:#1a1a1a}
@media (prefers-color-scheme:dark){body{background:#1a1a1a;color:#eee}th{background:#2a2a2a}
th,td{border-color:#444}.muted{color:#aaa}.banner{background:#3a1d1d;border-color:#6b2b2b}
.notice{background:#1d3a24;border-color:#2b6b3b}svg text,svg .legend,svg .value{fill:#ddd}svg .grid{stroke:#444}}
"""

_RUN_CLASS = {"success": "ok", "dry_run": "muted", "running": "warn", "failed": "bad", "stopped": "bad"}

CALENDAR_LABELS = {
    "google_writes": "Google writes",
    "advoware_writes": "Advoware writes",
    "failed": "failed",
    "parked": "parked",
}
CALENDAR_COLORS = {"google_writes": "#1a73e8", "advoware_writes": "#188038", "failed": "#d93025", "parked": "#f29900"}
PARTY_LABELS = {"advoware_writes": "Advoware writes", "failed": "failed (retried)", "dead": "dead letters"}
PARTY_COLORS = {"advoware_writes": "#188038", "failed": "#d93025", "dead": "#f29900"}
PARTY_RUN_COUNTS = ("claimed", "acked", "requeued", "retried", "dead", "advoware_writes")


@dataclass(frozen=True)
class Links:
    """What the host adds: hrefs relative to the page (the Airflow UI is one level up), the CSRF
    token of this page's forms (None: the user may not replay) and the runs a replay started."""

    employee_logs: Mapping[str, str] = field(default_factory=dict)
    party_run_log: str | None = None
    csrf_token: str | None = None
    replay_runs: Sequence[Mapping[str, Any]] = ()  # {dag_id, run_id, state, href}


def e(value: Any) -> str:
    """Escaped text of any value; None shows as a dash."""
    return "–" if value is None else html.escape(str(value), quote=True)


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


def when(ts: str | None, now: datetime) -> str:
    """The time in UTC, said so, and how long ago (machine-readable in `datetime`)."""
    t = _parse(ts)
    if t is None:
        return "–"
    t = t.astimezone(TZ)
    return (
        f'<time class=t datetime="{e(t.isoformat())}">{e(t.strftime("%Y-%m-%d %H:%M:%S"))} {TZ_NAME}</time>'
        f"<span class='ago muted'>{e(ago(now - t))}</span>"
    )


def ago(delta: timedelta) -> str:
    s = max(0, int(delta.total_seconds()))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"


def age(seconds: float | None) -> str:
    if not seconds:
        return "0 s"
    return ago(timedelta(seconds=seconds)).removesuffix(" ago")


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[int] = (),
    classes: Mapping[int, str] | None = None,
    name: str = "",
) -> str:
    """Cells arrive escaped (or built from escaped parts); headers are escaped here. `classes`: a
    CSS class per column index (err: wraps within a bounded width). The table scrolls in its box."""
    classes = dict(classes or {})
    for i in numeric:
        classes[i] = "n"
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td class={classes[i]}>{c}</td>" if i in classes else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    if not body:
        body = f"<tr><td colspan={len(headers)} class=muted>none</td></tr>"
    ident = f" id={e(name)}" if name else ""
    return f"<div class=tw><table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def counts(mapping: dict[str, Any] | None) -> str:
    if not mapping:
        return "<span class=muted>–</span>"
    return ", ".join(f"{e(k)}&nbsp;{e(v)}" for k, v in mapping.items())


def run_status(run: dict[str, Any] | None) -> str:
    if not run:
        return "<span class=muted>no run yet</span>"
    return f"<span class={_RUN_CLASS.get(run['status'], 'muted')}>{e(run['status'])}</span>"


def _n(value: int, bad: bool = False) -> str:
    return f"<span class=bad>{e(value)}</span>" if bad and value else e(value)


def link(href: str | None, text: str) -> str:
    """A link into the Airflow UI; `text` arrives escaped. No target: the UI's frame is sandboxed
    without allow-top-navigation or popups, so `_top` / `_blank` would be blocked."""
    return f'<a href="{e(href)}">{text}</a>' if href else text


def _stop_forms(employee: str, links: Links) -> str:
    """The answers to a safety stop (include/safety_stop.py): two same-origin forms with the CSRF token;
    read-only users see the command instead."""
    if links.csrf_token is None:
        return (
            f"<span class='ago muted'>answer: <code>kanzlei-sync calendar resolve-stop --employee "
            f"{e(employee)} refill|confirm</code></span>"
        )
    forms = "".join(
        f'<form method=post action="calendar/{e(quote(employee, safe=""))}/resolve-stop">'
        f'<input type=hidden name=csrf_token value="{e(links.csrf_token)}">'
        f'<button type=submit name=action value="{e(action)}">{e(label)}</button></form>'
        for action, label in STOP_LABELS.items()
    )
    return f"<span class=ago>{forms}</span>"


CHANNEL_CLASS = {"active": "ok", "expiring": "warn", "failing": "bad", "expired": "bad", "none": "muted"}


def channel_cell(channel: dict[str, Any] | None, now: datetime) -> str:
    """The employee's watch channel: its state, until when, a failing renewal's error; the last notification."""
    channel = channel or {"state": "none"}
    state = channel.get("state") or "none"
    text = f"<span class={CHANNEL_CLASS.get(state, 'muted')}>{e(state)}</span>"
    expires = _parse(channel.get("expires_at"))
    if expires is not None:
        left = expires - now
        in_ = f"in {ago(left).removesuffix(' ago')}" if left.total_seconds() > 0 else "passed"
        text += (
            f' until <time class=t datetime="{e(expires.astimezone(TZ).isoformat())}">'
            f"{e(expires.astimezone(TZ).strftime('%Y-%m-%d %H:%M'))} {TZ_NAME}</time> ({e(in_)})"
        )
    if channel.get("last_error"):
        text += f" <span class=bad>{e(channel['last_error'])}</span>"
    text += f"<span class='ago muted'>last notification {when(channel.get('last_notification_at'), now)}</span>"
    return text


_HAS_SYNC_TOKEN: dict[bool | None, str] = {True: "yes", False: "<span class=warn>no</span>"}


def employees_section(status: dict[str, Any], now: datetime, links: Links) -> str:
    rows = []
    for row in status["employees"]:
        cal, hub_links, run = row["calendar"] or {}, row["links"], row["last_run"]
        token = _HAS_SYNC_TOKEN.get(cal.get("has_sync_token"), "–")
        employee = row["employee"]
        rows.append(
            [
                f"<code>{e(employee)}</code>",
                (
                    f"<code>{e(cal.get('calendar_id'))}</code>"
                    if row["calendar"]
                    else "<span class=warn>no calendar</span>"
                )
                + f"<span class='ago muted'>{e(cal.get('mode'))}"
                + ("" if cal.get("active", True) else " (inactive)")
                + f"; sync token {token}</span>",
                when(cal.get("last_full_sync_at"), now),
                *(_n(hub_links.get(s, 0), bad=s in ("failed", "conflict")) for s in SHOWN_LINK_STATUSES),
                run_status(run)
                + (" " + link(links.employee_logs.get(employee), "log") if run else "")
                + (_stop_forms(employee, links) if run and run["status"] == "stopped" else ""),
                when(run["finished_at"] or run["started_at"], now) if run else "–",
                counts(run["counts"]) if run else "–",
                f"<span class=bad>{e(run['error'])}</span>" if run and run["error"] else "",
                channel_cell(row.get("channel"), now),
            ]
        )
    headers = [
        "employee",
        "calendar id; mode; sync token",
        f"last full sync ({TZ_NAME})",
        *SHOWN_LINK_STATUSES,
        "last run",
        f"run time ({TZ_NAME})",
        "run counts",
        "run error",
        f"Google push: channel; last notification ({TZ_NAME})",
    ]
    return "<h2>Calendar sync per employee</h2>" + table(
        headers, rows, numeric=range(3, 8), classes={1: "id", 10: "err", 11: "err"}, name="employees"
    )


def parties_section(status: dict[str, Any], now: datetime, links: Links) -> str:
    out = ["<h2>Parties (EspoCRM → Advoware)</h2>"]
    party_links = status.get("party_links")
    if party_links is not None:
        out.append(
            table(
                [*PARTY_STATUSES, "total", f"last synced ({TZ_NAME})"],
                [
                    [
                        *(_n(party_links["by_status"].get(s, 0), bad=s == "failed") for s in PARTY_STATUSES),
                        e(party_links["total"]),
                        when(party_links["last_synced_at"], now),
                    ]
                ],
                numeric=range(0, len(PARTY_STATUSES) + 1),
            )
        )
    run = status.get("party_run")
    out.append("<h3>Last party run</h3>")
    if run is None:
        out.append("<p id=party-run>" + run_status(None) + "</p>")
    else:
        c = run["counts"]
        out.append(
            table(
                [
                    "run",
                    "status",
                    f"started ({TZ_NAME})",
                    f"finished ({TZ_NAME})",
                    *(k.replace("_", " ") for k in PARTY_RUN_COUNTS),
                    "error",
                ],
                [
                    [
                        link(links.party_run_log, f"<code>{e(run['run_id'])}</code>"),
                        run_status(run),
                        when(run["started_at"], now),
                        when(run["finished_at"], now),
                        *(_n(c.get(k, 0), bad=k in ("retried", "dead")) for k in PARTY_RUN_COUNTS),
                        f"<span class=bad>{e(run['error'])}</span>" if run["error"] else "",
                    ]
                ],
                numeric=range(4, 4 + len(PARTY_RUN_COUNTS)),
                classes={0: "id", 10: "err"},
                name="party-run",
            )
        )
    q = status.get("queue")
    if q is not None:
        out.append(
            "<h3>Party queue (Redis)</h3>"
            + table(
                [
                    "pending",
                    "ready",
                    "claimed",
                    "expired claims",
                    "oldest ready",
                    "dead-letter outbox",
                    "deliveries",
                    "duplicates",
                    "accepted",
                    "rejected",
                    "dead",
                ],
                [
                    [
                        e(q.get("pending")),
                        e(q.get("ready")),
                        e(q.get("claimed")),
                        _n(q.get("expired_claims", 0), True),
                        e(age(q.get("oldest_ready_age_s"))),
                        _n(q.get("dead_letter_outbox", 0), True),
                        *(e(q.get(k, 0)) for k in ("deliveries", "duplicates", "accepted", "rejected", "dead")),
                    ]
                ],
                numeric=[0, 1, 2, 3, 5, 6, 7, 8, 9, 10],
            )
        )
    return "".join(out)


def activity_section(status: dict[str, Any]) -> str:
    act = status.get("activity")
    if not act:
        return ""
    days = act["days"]
    return (
        f"<h2>Last {len(days)} days (per day, {TZ_NAME})</h2><div class=charts>"
        "<figure id=chart-calendar><figcaption>advoware_calendar_sync: items written per side, failed, "
        "parked</figcaption>"
        + bar_chart("Calendar sync per day", days, act["calendar"], CALENDAR_LABELS, CALENDAR_COLORS)
        + "</figure><figure id=chart-parties><figcaption>beteiligte_sync: Advoware writes, failed "
        "(retried), dead letters</figcaption>"
        + bar_chart("Party sync per day", days, act["parties"], PARTY_LABELS, PARTY_COLORS)
        + "</figure></div>"
    )


def _replay_form(d: Mapping[str, Any], links: Links) -> str:
    if links.csrf_token is None:
        return "<span class=muted>read-only</span>"
    if d["source"] != "calendar_sync" and not d["entity_id"]:
        return "<span class=muted>no id to replay</span>"
    return (
        f'<form method=post action="dead-letters/{e(d["id"])}/replay">'
        f'<input type=hidden name=csrf_token value="{e(links.csrf_token)}">'
        f'<button type=submit name=replay value="{e(d["id"])}">Replay</button></form>'
    )


def dead_letters_section(status: dict[str, Any], now: datetime, links: Links) -> str:
    dl = status.get("dead_letters")
    if dl is None:
        return ""
    by_source = ", ".join(f"{e(k)}&nbsp;{e(v)}" for k, v in dl["by_source"].items())
    head = f"<h2 id=dead-letters-open>Open dead letters: {_n(dl['open'], bad=True)}</h2>" + (
        f"<p class=muted>by source: {by_source}. Replay: a party id goes back into the queue and "
        "a beteiligte_sync run starts; a parked calendar item is released and a calendar run "
        f"starts for its employee.</p>"
        if by_source
        else ""
    )
    rows = [
        [
            e(d["id"]),
            e(d["source"]),
            f"<code>{e(d['entity_id'])}</code>",
            e(d["attempts"]),
            when(d["created_at"], now),
            e(d["reason"]),
            _replay_form(d, links),
        ]
        for d in dl["newest"]
    ]
    return head + table(
        ["id", "source", "entity id", "attempts", f"created ({TZ_NAME})", "reason", "action"],
        rows,
        numeric=[0, 3],
        classes={2: "id", 5: "err"},
        name="dead-letters",
    )


def series_exceptions_section(status: dict[str, Any], now: datetime) -> str:
    """The exceptions standing in Google: one occurrence of a series moved, changed or cancelled there,
    kept by the sync (Advoware cannot hold it; its series is unchanged)."""
    se = status.get("series_exceptions")
    if se is None:
        return ""
    per = ", ".join(f"<code>{e(k)}</code>&nbsp;{e(v)}" for k, v in se["by_employee"].items())
    head = (
        f"<h2 id=series-exceptions>Series exceptions standing in Google: {e(se['standing'])}</h2>"
        "<p class=muted>One occurrence of a series moved, changed or cancelled in Google. Advoware cannot hold "
        "it: the series there is unchanged, the occurrence stays as the employee left it in Google."
        + (f" Per employee: {per}." if per else "")
        + "</p>"
    )
    if not se["newest"]:
        return head
    rows = [
        [
            f"<code>{e(x['employee'])}</code>",
            e(x["frnr"] if x["frnr"] is not None else "–"),
            f"<code>{e(x['master_event_id'])}</code>",
            f"<code>{e(x['instance_id'])}</code>",
            e(x["original_start"]),
            e(x["kind"]),
            when(x["first_seen_at"], now),
            when(x["last_seen_at"], now),
        ]
        for x in se["newest"]
    ]
    return head + table(
        [
            "employee",
            "frNr",
            "series (Google)",
            "occurrence (Google)",
            "original start (Berlin)",
            "kind",
            f"first seen ({TZ_NAME})",
            f"last seen ({TZ_NAME})",
        ],
        rows,
        numeric=[1],
        classes={2: "id", 3: "id"},
        name="series-exceptions",
    )


def writes_section(status: dict[str, Any], now: datetime) -> str:
    rows = []
    for w in status["writes"]:
        code = w["status"]
        cls = "bad" if code is None or code >= 400 else "ok"
        rows.append(
            [
                when(w["at"], now),
                e(w["actor"]),
                e(w["method"]),
                f"<code>{e(w['target'])}</code>",
                f"<span class={cls}>{e(code)}</span>",
            ]
        )
    return f"<h2>Last {len(rows)} audited writes</h2>" + table(
        [f"time ({TZ_NAME})", "actor", "method", "target", "status"], rows, numeric=[4], classes={3: "err"}
    )


def _runs(links: Links) -> str:
    return "".join(
        f"<span class=ago>{e(r['dag_id'])} run "
        f"{link(r.get('href'), '<code>' + e(r['run_id']) + '</code>')}: {e(r['state'])}</span>"
        for r in links.replay_runs
    )


def notice(status: dict[str, Any], now: datetime, links: Links) -> str:
    """After a replay (the page was asked for one dead letter): its state, read back from the hub,
    and the runs the replay started, read from Airflow. After a stop's answer: the run it started."""
    if status.get("started"):
        return (
            f"<div class=notice id=notice>Answer to the safety stop: run <code>{e(status['started'])}</code> "
            f"requested.{_runs(links)}</div>"
        )
    if "dead_letter" not in status:
        return ""
    d = status["dead_letter"]
    if d is None:
        return "<div class=banner id=notice>That dead letter does not exist.</div>"
    text = f"Dead letter {e(d['id'])} ({e(d['source'])}, <code>{e(d['entity_id'])}</code>): " + (
        f"replayed at {when(d['replayed_at'], now)}" if d["replayed_at"] else "still open."
    )
    runs = _runs(links)
    cls = "notice" if d["replayed_at"] else "banner"
    return f"<div class={cls} id=notice>{text}{runs}</div>"


def render(status: dict[str, Any], links: Links | None = None) -> str:
    links = links or Links()
    now = _parse(status["generated_at"]) or datetime.now(UTC)
    banner = ""
    if status["errors"]:
        parts = ", ".join(f"{e(k)} ({e(v)})" for k, v in status["errors"].items())
        banner = f"<div class=banner>Could not read: {parts}. The sections below show what was reachable.</div>"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<meta http-equiv=refresh content={REFRESH_S}><title>Sync status</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Sync status</h1>"
        f"<p class=muted id=as-of>As of {e(now.astimezone(TZ).strftime('%Y-%m-%d %H:%M:%S'))} {TZ_NAME}. "
        f"All times in {TZ_NAME}. Ids and counts only. Reloads every {REFRESH_S} s. <a href=api>JSON</a> · "
        "<a href=check id=check-link>Connection check</a></p>"
        + notice(status, now, links)
        + banner
        + employees_section(status, now, links)
        + activity_section(status)
        + parties_section(status, now, links)
        + dead_letters_section(status, now, links)
        + series_exceptions_section(status, now)
        + writes_section(status, now)
        + "</body></html>"
    )
