"""The planner's input link rows and its output `Plan` (JSON-serialisable; the executor's contract).

Every action kind is a small frozen dataclass with exactly its own fields (the groups several kinds
share are declared once, by mixins: `OnLink`/`MaybeOnLink` the `row`, `LinkWrite` the link values
an applied action stores, `AdvowareSeen` the Advoware stamp, `ToGoogle`/`ToAdvoware` the body a
write to that side carries), and carries its
`ActionKind` (phase, the side it writes: google, advoware or only the hub; what it counts as once
applied, the run report's verb; whether it is a deletion) as the ClassVar `spec`. `ACTION_KINDS` is
the table of those specs by name; the planner, the executor and `Plan` read them from the classes,
and nothing dispatches by the kind's name (it is only the serialised form, `{"kind": ...}`).

Fields every action has: `rule` (why: the decision that made it, e.g. "google_changed", "revert",
"orphan", "new_google"; a field, never parsed), `employee`, `google_event_id` (for a series
exception the instance id). Most have `frnr` (a create in Advoware has none: the create returns it)
and `row` ("<advoware state>/<google state>" of the decision table for an item that has a complete
hub link; None for an unlinked item; absent where it is always None). Then, per kind:
- `google_body` full event body for create/update/adopt (PUT semantics; `id` set on create; an
  adopt's is None when the event is only linked).
- `advoware_body` Termin body for create (no frNr) / update (with frNr).
- `advoware_fingerprint`, `google_fingerprint`: what to store in the hub link after success.
- `span_start`, `span_end`: ISO dates to store with the link (window checks; 2037-12-31 = open).
- `advoware_changed_at`: Advoware `zuletztGeaendertAm` seen when planning (stale check before an
  Advoware update/delete: re-read, skip if it moved). `google_updated`: Google `updated` seen.
- `google_seen_fingerprint` (UpdateGoogle): the content fingerprint of the Google event the plan
  decided on (as listed, or the link's when Google was not listed in an incremental run). Before the
  PUT the executor re-reads the event and skips it if a person changed it since (stamp and content
  both moved); the PUT carries If-Match with the etag just read.
- `confirm_absent`: the side on which, before this deletion, the item is confirmed really gone (GET
  by id: 404/410/cancelled, or Advoware: now owned by someone else); if it still exists, skip (it
  left the window or moved; never delete on a listing alone). Always "advoware" for DeleteGoogle;
  "google" or None for DeleteAdvoware.
- Series exceptions (`ExceptionAction`; `frnr` the series' when the hub links it): `master_event_id`,
  `original_start` (Berlin ISO date-time or date), `exception_kind` (moved, changed, cancelled);
  `google_fingerprint` the exception's as listed (keep) or the occurrence's (revert: `google_body`
  is the occurrence).

Kinds: `CreateGoogle` (insert with the deterministic id; on 409 GET it and, if cancelled, undelete
by update with status "confirmed"), `UpdateGoogle`, `DeleteGoogle`, `CreateAdvoware` (then PATCH
the Google event's extendedProperties.private with `marker_properties(employee, frnr, "google")`),
`UpdateAdvoware`, `DeleteAdvoware`, `Adopt` (link an existing Google event; PUT `google_body` if not
None), `Link` (store fingerprints only, no API call), `Forget` (both sides gone: drop/mark the link
'deleted'). Series exceptions (include/calendar_engine/series_exceptions.py, applied by
include/calendar_sync/series_writes.py): `KeepException` (record it in the hub as standing),
`CloseException` (its row closed: gone), `RevertException` (PUT the instance back to its
occurrence), `DropException` (delete an orphan exception in Google); none counts as a deletion.

Stored form (`Plan.to_dict`, the hub's sync_plans): `{"format": 2, ..., "phase1": [{"kind": ...,
<its fields>}, ...]}`. Format 1 (no "format" key: every field of the one former `Action` class
present, None where unused) is still read.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

PLAN_FORMAT = 2  # the stored form's version (see the module's docstring)


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


@dataclass(frozen=True, kw_only=True)
class Action:
    """What every action has; a kind is a subclass (below) with its own fields and `spec`."""

    spec: ClassVar[ActionKind]
    rule: str
    employee: str
    google_event_id: str

    @property
    def kind(self) -> str:
        return self.spec.name

    @property
    def phase(self) -> int:
        return self.spec.phase

    @property
    def advoware_id(self) -> int | None:
        """The Advoware frNr the action is about (None: not known before it runs)."""
        return None

    @property
    def linked(self) -> bool:
        """About an item with a complete hub link (a failure is counted on that link)."""
        return False

    def to_dict(self) -> dict[str, Any]:
        # an optional field (one with a default) is stored only when set: plans stored before it
        # existed read back, and are written, the same
        return {
            "kind": self.kind,
            **{
                f.name: getattr(self, f.name)
                for f in fields(self)
                if f.default is MISSING or getattr(self, f.name) != f.default
            },
        }


@dataclass(frozen=True, kw_only=True)
class ItemAction(Action):
    """An action about an item known by its Advoware frNr (an orphan: the frNr its marker names)."""

    frnr: int

    @property
    def advoware_id(self) -> int | None:
        return self.frnr


@dataclass(frozen=True, kw_only=True)
class OnLink:
    """About an item with a complete hub link: `row` is its row of the decision table."""

    row: str

    @property
    def linked(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class MaybeOnLink:
    """About an item linked in the hub (`row` its row of the decision table) or not (`row` None)."""

    row: str | None

    @property
    def linked(self) -> bool:
        return self.row is not None


@dataclass(frozen=True, kw_only=True)
class AdvowareSeen:
    advoware_changed_at: str | None  # Advoware's zuletztGeaendertAm seen when planning


@dataclass(frozen=True, kw_only=True)
class LinkWrite(Action):
    """An action that stores its item's hub link once applied: what the link is to hold besides the
    ids (the values read back after the write win over these)."""

    advoware_fingerprint: str | None
    google_fingerprint: str | None
    span_start: str | None
    span_end: str | None
    google_updated: str | None


@dataclass(frozen=True, kw_only=True)
class ToGoogle(ItemAction, LinkWrite, AdvowareSeen):
    """Advoware's version of an item written to Google (an insert or an update)."""

    google_body: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class CreateGoogle(MaybeOnLink, ToGoogle):
    spec = ActionKind("create_google", 1, "google", "created")


@dataclass(frozen=True, kw_only=True)
class UpdateGoogle(OnLink, ToGoogle):
    spec = ActionKind("update_google", 4, "google", "updated")
    google_seen_fingerprint: str | None


@dataclass(frozen=True, kw_only=True)
class Adopt(ItemAction, LinkWrite, AdvowareSeen):
    spec = ActionKind("adopt", 1, "google", "adopted")
    google_body: dict[str, Any] | None  # None: only linked, the event already holds our version


@dataclass(frozen=True, kw_only=True)
class DeleteGoogle(MaybeOnLink, ItemAction):
    spec = ActionKind("delete_google", 3, "google", "deleted", deletion=True)
    confirm_absent: ClassVar[Literal["advoware"]] = "advoware"  # always confirmed gone from Advoware


@dataclass(frozen=True, kw_only=True)
class ToAdvoware(LinkWrite):
    """Google's version of an item written to Advoware (a create or an update)."""

    advoware_body: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class CreateAdvoware(MaybeOnLink, ToAdvoware):
    spec = ActionKind("create_advoware", 2, "advoware", "created")


@dataclass(frozen=True, kw_only=True)
class UpdateAdvoware(OnLink, ItemAction, ToAdvoware, AdvowareSeen):
    spec = ActionKind("update_advoware", 4, "advoware", "updated")


@dataclass(frozen=True, kw_only=True)
class DeleteAdvoware(OnLink, ItemAction, AdvowareSeen):
    spec = ActionKind("delete_advoware", 3, "advoware", "deleted", deletion=True)
    confirm_absent: Literal["google"] | None  # "google": Google's listing did not return it


@dataclass(frozen=True, kw_only=True)
class Link(OnLink, ItemAction, LinkWrite, AdvowareSeen):
    spec = ActionKind("link", 4, "hub", "linked")


@dataclass(frozen=True, kw_only=True)
class Forget(OnLink, ItemAction):
    spec = ActionKind("forget", 3, "hub", "forgotten")


@dataclass(frozen=True, kw_only=True)
class ExceptionAction(Action):
    """About one exception of a Google series (`google_event_id`: the instance id); never its link."""

    frnr: int | None  # the series' when the hub links it
    master_event_id: str
    original_start: str
    exception_kind: str | None
    google_fingerprint: str | None

    @property
    def advoware_id(self) -> int | None:
        return self.frnr


# series exceptions, after the updates (a master's new rule is written before its orphans go)
@dataclass(frozen=True, kw_only=True)
class KeepException(ExceptionAction):
    spec = ActionKind("keep_exception", 4, "hub", "kept")
    google_body: dict[str, Any] | None  # the occurrence, when the plan rewrites the series first
    # then also the exception to re-apply where Google removed it (None: read before the rewrite)
    exception_body: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class CloseException(ExceptionAction):
    spec = ActionKind("close_exception", 4, "hub", "closed")


@dataclass(frozen=True, kw_only=True)
class RevertException(ExceptionAction):
    spec = ActionKind("revert_exception", 4, "google", "reverted")
    google_body: dict[str, Any]  # the occurrence as the series has it


@dataclass(frozen=True, kw_only=True)
class DropException(ExceptionAction):
    spec = ActionKind("drop_exception", 4, "google", "dropped")


# the kinds that end their item's link: applied, the link is marked 'deleted'
EndsLink = DeleteGoogle | DeleteAdvoware | Forget

ACTION_CLASSES: dict[str, type[Action]] = {  # by the name of the kind: the stored form's "kind"
    cls.spec.name: cls
    for cls in (
        Adopt,
        CreateGoogle,
        CreateAdvoware,
        DeleteGoogle,
        DeleteAdvoware,
        Forget,
        UpdateGoogle,
        UpdateAdvoware,
        Link,
        KeepException,
        CloseException,
        RevertException,
        DropException,
    )
}
ACTION_KINDS: dict[str, ActionKind] = {name: cls.spec for name, cls in ACTION_CLASSES.items()}
KINDS = tuple(ACTION_KINDS)
ADVOWARE_WRITES = frozenset(k.name for k in ACTION_KINDS.values() if k.writes_advoware)
ORPHAN = "orphan"  # the rule of a delete_google for an event with our marker and no Advoware item


def action_from_dict(data: dict[str, Any]) -> Action:
    """An action from its stored form, either format: the fields of its kind are taken, the rest
    (format 1 held every field of every kind, None where unused) is left."""
    cls = ACTION_CLASSES.get(str(data.get("kind")))
    if cls is None:
        raise ValueError(f"unknown action kind {data.get('kind')!r}")
    values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(cls)}
    return cls(**values)


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
class Report:
    kind: str
    employee: str
    frnr: int | None = None
    google_event_id: str | None = None
    detail: str = ""


PHASE_LISTS = ("adoptions", "phase1", "phase2", "phase3", "phase4")


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
        if isinstance(action, Adopt):
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
        out: dict[str, Any] = {"format": PLAN_FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in PHASE_LISTS:
                value = [a.to_dict() for a in value]
            elif f.name == "reports":
                value = [asdict(r) for r in value]
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("format", 1) not in (1, PLAN_FORMAT):
            raise ValueError(f"unknown plan format {data.get('format')!r}")
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in PHASE_LISTS:
            values[key] = [action_from_dict(a) for a in data.get(key, [])]
        values["reports"] = [Report(**r) for r in data.get("reports", [])]
        return cls(**values)
