"""The planner's input link rows and its output `Plan` (JSON-serialisable; the executor's contract).

`ACTION_KINDS` is the one table of what an action is: its phase, the side it writes (google,
advoware, or only the hub), what it counts as once applied (the run report's verb), whether it is a
deletion. The planner, the executor and `Plan` all read it; nothing passes a phase by hand.

`Action` fields (every field always present in JSON, None where not applicable):
- `kind` (the table), `rule` (why: the decision that made it, e.g. "google_changed", "revert",
  "orphan", "new_google"; a field, never parsed), `row` ("<advoware state>/<google state>" of the
  decision table for an item that has a complete hub link; None for an unlinked item),
  `employee`, `frnr` (None until an Advoware create returns it), `google_event_id`.
- `google_body` full event body for create/update/adopt (PUT semantics; `id` set on create).
- `advoware_body` Termin body for create (no frNr) / update (with frNr).
- `advoware_fingerprint`, `google_fingerprint`: what to store in the hub link after success.
- `span_start`, `span_end`: ISO dates to store with the link (window checks; 2037-12-31 = open).
- `advoware_changed_at`: Advoware `zuletztGeaendertAm` seen when planning (stale check before an
  Advoware update/delete: re-read, skip if it moved). `google_updated`: Google `updated` seen.
- `google_seen_fingerprint` (update_google): the content fingerprint of the Google event the plan
  decided on (as listed, or the link's when Google was not listed in an incremental run). Before the
  PUT the executor re-reads the event and skips it if a person changed it since (stamp and content
  both moved); the PUT carries If-Match with the etag just read.
- `confirm_absent`: "advoware" | "google" | None: before this deletion, confirm the item is really
  gone from that side (GET by id: 404/410/cancelled, or Advoware: now owned by someone else);
  if it still exists, skip (it left the window or moved; never delete on a listing alone).
- Series exceptions (`*_exception` kinds; `google_event_id` is the instance id, `frnr` the series'
  when the hub links it): `master_event_id`, `original_start` (Berlin ISO date-time or date),
  `exception_kind` (moved, changed, cancelled); `google_fingerprint` the exception's as listed
  (keep) or the occurrence's (revert: `google_body` is the occurrence).

Kinds: `create_google` (insert with the deterministic id; on 409 GET it and, if cancelled,
undelete by update with status "confirmed"), `update_google`, `delete_google`, `create_advoware`
(then PATCH the Google event's extendedProperties.private with `marker_properties(employee, frnr,
"google")`), `update_advoware`, `delete_advoware`, `adopt` (link an existing Google event; PUT
`google_body` if not None), `link` (store fingerprints only, no API call), `forget` (both sides
gone: drop/mark the link 'deleted'). Series exceptions (include/calendar_engine/series_exceptions.py,
applied by include/calendar_sync/series_exceptions.py): `keep_exception` (record it in the hub as
standing), `close_exception` (its row closed: gone), `revert_exception` (PUT the instance back to its
occurrence), `drop_exception` (delete an orphan exception in Google); none counts as a deletion.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class ActionKind:
    name: str
    phase: int  # 1 adoptions and new in Google, 2 new in Advoware, 3 deletions, 4 updates
    side: str  # where it writes: "google", "advoware" or "hub" (bookkeeping only)
    verb: str  # what it counts as once applied: the run report's column (google.created, ...)
    deletion: bool = False

    @property
    def writes_advoware(self) -> bool:
        return self.side == "advoware"


ACTION_KINDS: dict[str, ActionKind] = {
    k.name: k
    for k in (
        ActionKind("adopt", 1, "google", "adopted"),
        ActionKind("create_google", 1, "google", "created"),
        ActionKind("create_advoware", 2, "advoware", "created"),
        ActionKind("delete_google", 3, "google", "deleted", deletion=True),
        ActionKind("delete_advoware", 3, "advoware", "deleted", deletion=True),
        ActionKind("forget", 3, "hub", "forgotten"),
        ActionKind("update_google", 4, "google", "updated"),
        ActionKind("update_advoware", 4, "advoware", "updated"),
        ActionKind("link", 4, "hub", "linked"),
        # series exceptions, after the updates (a master's new rule is written before its orphans go)
        ActionKind("keep_exception", 4, "hub", "kept"),
        ActionKind("close_exception", 4, "hub", "closed"),
        ActionKind("revert_exception", 4, "google", "reverted"),
        ActionKind("drop_exception", 4, "google", "dropped"),
    )
}
EXCEPTION_KINDS = frozenset(k for k in ACTION_KINDS if k.endswith("_exception"))
KINDS = tuple(ACTION_KINDS)
ADVOWARE_WRITES = frozenset(k.name for k in ACTION_KINDS.values() if k.writes_advoware)
GOOGLE_WRITES = frozenset(k.name for k in ACTION_KINDS.values() if k.side == "google" and k.name != "adopt")
DELETIONS = frozenset(k.name for k in ACTION_KINDS.values() if k.deletion)
ORPHAN = "orphan"  # the rule of a delete_google for an event with our marker and no Advoware item

# Report kinds (ids only in `detail`, never appointment text).
REPORT_KINDS = (
    "shared_pool_skipped",
    "special_read_only",
    "unsupported_rule",
    "write_protected_new_google",
    "write_protected_revert",
    "orphan",
    "foreign_marker",
    "invalid_advoware",
    "left_window",
    "parked",
    "calendar_recreated",
    "calendar_reshared",
    "calendar_relisted",
    "series_exception_kept",
    "series_exception_reverted",
    "series_exception_dropped",
)


@dataclass(frozen=True)
class HubLink:
    """One link of an employee's appointment: the `calendar_links` row the planner reads, and what a
    successful action writes back (the one shape of a link; span_* are optional extras, see README)."""

    employee: str
    frnr: int | None
    google_event_id: str | None
    advoware_fingerprint: str | None = None
    google_fingerprint: str | None = None
    advoware_changed_at: str | None = None
    google_updated: str | None = None
    status: str = "linked"
    span_start: str | None = None
    span_end: str | None = None
    google_etag: str | None = None  # kept for conditional writes; the planner does not read it


@dataclass
class Action:
    kind: str
    rule: str
    employee: str
    frnr: int | None = None
    google_event_id: str | None = None
    google_body: dict[str, Any] | None = None
    advoware_body: dict[str, Any] | None = None
    advoware_fingerprint: str | None = None
    google_fingerprint: str | None = None
    span_start: str | None = None
    span_end: str | None = None
    advoware_changed_at: str | None = None
    google_updated: str | None = None
    google_seen_fingerprint: str | None = None
    confirm_absent: str | None = None
    row: str | None = None
    master_event_id: str | None = None
    original_start: str | None = None
    exception_kind: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}")

    @property
    def spec(self) -> ActionKind:
        return ACTION_KINDS[self.kind]

    @property
    def phase(self) -> int:
        return self.spec.phase

    @property
    def linked(self) -> bool:
        """About an item with a complete hub link (a failure is counted on that link)."""
        return self.row is not None


@dataclass
class Report:
    kind: str
    employee: str
    frnr: int | None = None
    google_event_id: str | None = None
    detail: str = ""


@dataclass
class Plan:
    employee: str
    window_start: str
    window_end: str
    google_complete: bool
    policy: dict[str, Any]
    adoptions: list[Action] = field(default_factory=list)
    phase1: list[Action] = field(default_factory=list)
    phase2: list[Action] = field(default_factory=list)
    phase3: list[Action] = field(default_factory=list)
    phase4: list[Action] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    stop_reason: str | None = None
    withheld: dict[str, int] = field(default_factory=dict)

    @property
    def dry_run(self) -> bool:
        return bool(self.policy.get("dry_run"))

    def add(self, action: Action) -> None:
        """File an action under its phase (adoptions first in phase 1)."""
        if action.kind == "adopt":
            self.adoptions.append(action)
        else:
            getattr(self, f"phase{action.phase}").append(action)

    def phase(self, number: int) -> list[Action]:
        """What the phase task executes (phase 1 = adoptions, then creates in Google)."""
        if number == 1:
            return [*self.adoptions, *self.phase1]
        return list(getattr(self, f"phase{number}"))

    def actions(self) -> list[Action]:
        return [a for n in (1, 2, 3, 4) for a in self.phase(n)]

    def is_empty(self) -> bool:
        return not self.actions()

    def counts(self) -> dict[str, int]:
        """Flat counts for logs and the hub's jsonb column: per kind, per phase, per report kind."""
        out: dict[str, int] = {k: 0 for k in KINDS}
        out.update(Counter(a.kind for a in self.actions()))
        for n in (1, 2, 3, 4):
            out[f"phase{n}"] = len(self.phase(n))
        out["reports"] = len(self.reports)
        for kind, n in Counter(r.kind for r in self.reports).items():
            out[f"report_{kind}"] = n
        out["stopped"] = int(self.stop_reason is not None)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        action_fields = {f.name for f in fields(Action)}
        for key in ("adoptions", "phase1", "phase2", "phase3", "phase4"):
            values[key] = [Action(**{k: v for k, v in a.items() if k in action_fields}) for a in data.get(key, [])]
        values["reports"] = [Report(**r) for r in data.get("reports", [])]
        return cls(**values)
