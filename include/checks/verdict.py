"""The common answer of every check: which service, ok / fail / skip, what was checked, and the fix.

A message names hosts, ids, counts and error classes or codes, never a secret or a record's content.
`skip` is a deliberate absence (e.g. no SMTP server configured), not a failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "fail", "skip"]


@dataclass(frozen=True)
class Verdict:
    service: str
    status: Status
    checked: str  # what was checked, and what was found
    fix: str = ""  # what to do about a fail (or what a skip means)

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ok(service: str, checked: str) -> Verdict:
    return Verdict(service, "ok", checked)


def fail(service: str, checked: str, fix: str) -> Verdict:
    return Verdict(service, "fail", checked, fix)


def skip(service: str, checked: str, fix: str = "") -> Verdict:
    return Verdict(service, "skip", checked, fix)


def render(verdicts: list[Verdict]) -> str:
    """The CLI's text: one line per verdict, the fix indented below a fail or skip."""
    lines = []
    for v in verdicts:
        lines.append(f"{v.status.upper() if v.status == 'fail' else v.status:<5} {v.service:<9} {v.checked}")
        if v.fix and v.status != "ok":
            lines.append(f"{'':<16}fix: {v.fix}")
    failed = sum(1 for v in verdicts if v.status == "fail")
    skipped = sum(1 for v in verdicts if v.status == "skip")
    lines.append(f"{len(verdicts) - failed - skipped} ok, {failed} failed, {skipped} skipped")
    return "\n".join(lines)
