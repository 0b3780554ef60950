"""The status dict (include.status.queries.collect) as one self-contained HTML page.

Every value goes through `html.escape`, whatever its source: ids and error texts come from systems
we do not control. No scripts, no external assets (the page runs in an iframe of the Airflow UI
under a strict Content-Security-Policy); it reloads itself every REFRESH_S seconds.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from include.status.queries import PARTY_STATUSES, SHOWN_LINK_STATUSES

TZ = ZoneInfo("Europe/Berlin")
REFRESH_S = 60

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#1a1a1a;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse;margin-bottom:8px}th,td{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666}.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.warn{color:#a15c00}
.banner{background:#fdecea;border:1px solid #f5c2c0;padding:8px;margin:8px 0}
code{font-size:12px}
@media (prefers-color-scheme:dark){body{background:#1a1a1a;color:#eee}th{background:#2a2a2a}
th,td{border-color:#444}.muted{color:#aaa}.banner{background:#3a1d1d;border-color:#6b2b2b}}
"""

_RUN_CLASS = {"success": "ok", "dry_run": "muted", "running": "warn", "failed": "bad", "stopped": "bad"}


def e(value: Any) -> str:
    """Escaped text of any value; None shows as a dash."""
    return "–" if value is None else html.escape(str(value), quote=True)


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


def when(ts: str | None, now: datetime) -> str:
    """Local time (Europe/Berlin) and how long ago."""
    t = _parse(ts)
    if t is None:
        return "–"
    return f"{e(t.astimezone(TZ).strftime('%Y-%m-%d %H:%M:%S'))} <span class=muted>({e(ago(now - t))})</span>"


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


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """Cells arrive escaped (or built from escaped parts); headers are escaped here."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td class=n>{c}</td>" if i in numeric else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    if not body:
        body = f"<tr><td colspan={len(headers)} class=muted>none</td></tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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


def employees_section(status: dict[str, Any], now: datetime) -> str:
    rows = []
    for emp in status["employees"]:
        cal, links, run = emp["calendar"] or {}, emp["links"], emp["last_run"]
        token = {True: "yes", False: "<span class=warn>no</span>"}.get(cal.get("has_sync_token"), "–")
        rows.append([
            f"<code>{e(emp['employee'])}</code>",
            f"<code>{e(cal.get('calendar_id'))}</code>" if emp["calendar"] else
            "<span class=warn>no calendar</span>",
            e(cal.get("mode")) + ("" if cal.get("active", True) else " <span class=muted>(inactive)</span>"),
            when(cal.get("last_full_sync_at"), now),
            token,
            *(_n(links.get(s, 0), bad=s in ("failed", "conflict")) for s in SHOWN_LINK_STATUSES),
            run_status(run),
            when(run["finished_at"] or run["started_at"], now) if run else "–",
            counts(run["counts"]) if run else "–",
            f"<span class=bad>{e(run['error'])}</span>" if run and run["error"] else "",
        ])
    headers = ["employee", "calendar id", "mode", "last full sync", "sync token",
               *SHOWN_LINK_STATUSES, "last run", "run time", "run counts", "run error"]
    return "<h2>Calendar sync per employee</h2>" + table(headers, rows, numeric=range(5, 10))


def parties_section(status: dict[str, Any], now: datetime) -> str:
    out = ["<h2>Parties (EspoCRM → Advoware)</h2>"]
    links = status.get("party_links")
    if links is not None:
        out.append(table([*PARTY_STATUSES, "total", "last synced"],
                         [[*(_n(links["by_status"].get(s, 0), bad=s == "failed") for s in PARTY_STATUSES),
                           e(links["total"]), when(links["last_synced_at"], now)]],
                         numeric=range(0, len(PARTY_STATUSES) + 1)))
    run = status.get("party_run")
    out.append("<p>Last party run: " + run_status(run) + (
        f" <code>{e(run['run_id'])}</code> {when(run['finished_at'] or run['started_at'], now)} "
        f"{counts(run['counts'])}" + (f" <span class=bad>{e(run['error'])}</span>" if run["error"] else "")
        if run else "") + "</p>")
    q = status.get("queue")
    if q is not None:
        out.append("<h3>Party queue (Redis)</h3>" + table(
            ["pending", "ready", "claimed", "expired claims", "oldest ready", "dead-letter outbox",
             "deliveries", "duplicates", "accepted", "rejected", "dead"],
            [[e(q.get("pending")), e(q.get("ready")), e(q.get("claimed")), _n(q.get("expired_claims", 0), True),
              e(age(q.get("oldest_ready_age_s"))), _n(q.get("dead_letter_outbox", 0), True),
              *(e(q.get(k, 0)) for k in ("deliveries", "duplicates", "accepted", "rejected", "dead"))]],
            numeric=[0, 1, 2, 3, 5, 6, 7, 8, 9, 10]))
    return "".join(out)


def dead_letters_section(status: dict[str, Any], now: datetime) -> str:
    dl = status.get("dead_letters")
    if dl is None:
        return ""
    by_source = ", ".join(f"{e(k)}&nbsp;{e(v)}" for k, v in dl["by_source"].items())
    head = (f"<h2>Open dead letters: {_n(dl['open'], bad=True)}</h2>"
            + (f"<p class=muted>by source: {by_source}</p>" if by_source else ""))
    rows = [[e(d["id"]), e(d["source"]), f"<code>{e(d['entity_id'])}</code>", e(d["attempts"]),
             when(d["created_at"], now), e(d["reason"])] for d in dl["newest"]]
    return head + table(["id", "source", "entity id", "attempts", "created", "reason"], rows, numeric=[0, 3])


def writes_section(status: dict[str, Any], now: datetime) -> str:
    rows = []
    for w in status["writes"]:
        code = w["status"]
        cls = "bad" if code is None or code >= 400 else "ok"
        rows.append([when(w["at"], now), e(w["actor"]), e(w["method"]), f"<code>{e(w['target'])}</code>",
                     f"<span class={cls}>{e(code)}</span>"])
    return (f"<h2>Last {len(rows)} audited writes</h2>"
            + table(["time", "actor", "method", "target", "status"], rows, numeric=[4]))


def render(status: dict[str, Any]) -> str:
    now = _parse(status["generated_at"]) or datetime.now(UTC)
    banner = ""
    if status["errors"]:
        parts = ", ".join(f"{e(k)} ({e(v)})" for k, v in status["errors"].items())
        banner = f"<div class=banner>Could not read: {parts}. The sections below show what was reachable.</div>"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta http-equiv=refresh content={REFRESH_S}><title>Sync status</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Sync status</h1>"
        f"<p class=muted>As of {e(now.astimezone(TZ).strftime('%Y-%m-%d %H:%M:%S %Z'))}; ids and counts only. "
        f"Reloads every {REFRESH_S} s. <a href=api>JSON</a></p>"
        + banner
        + employees_section(status, now)
        + parties_section(status, now)
        + dead_letters_section(status, now)
        + writes_section(status, now)
        + "</body></html>"
    )
