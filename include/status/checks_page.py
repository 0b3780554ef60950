"""The connection check (include/checks) as a page of the status view: `/sync-status/check`.

Run on demand (the link on the status page), not on every refresh: each check reads once from each
service. Same verdicts, same words as `kanzlei-sync check`.
"""

from __future__ import annotations

from html import escape as e

from include.checks.verdict import Verdict
from include.status.page import _CSS

_MARK = {"ok": "ok", "fail": "FAIL", "skip": "skip"}


def render_checks(verdicts: list[Verdict]) -> str:
    failed = sum(1 for v in verdicts if v.status == "fail")
    rows = "".join(
        f"<tr class=check-{e(v.status)}><td>{_MARK[v.status]}</td><td>{e(v.service)}</td><td>{e(v.checked)}</td>"
        f"<td>{e(v.fix) if v.status != 'ok' else ''}</td></tr>"
        for v in verdicts
    )
    summary = f"{failed} failed" if failed else "all passed"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Connection check</title>"
        f"<style>{_CSS}</style></head><body><h1>Connection check</h1>"
        f"<p id=check-summary>{len(verdicts)} checks, {e(summary)}; the same as <code>kanzlei-sync check</code>. "
        "<a href='./'>Back to the sync status</a> · <a href=api/check>JSON</a></p>"
        "<table id=checks><tr><th>result</th><th>service</th><th>checked</th><th>fix</th></tr>"
        f"{rows}</table></body></html>"
    )
