"""The planner: hub links + both sides of one employee's window + policy → a `Plan`. Pure.

Inputs: `links` (hub rows; rows with status 'deleted' and half rows without both ids are ignored),
`advoware_items` (raw Termine listed for the window), `google_items` (raw events: a full listing of
the window incl. cancelled when `google_complete`, else an incremental change set where absence
means "unchanged"), `policy`, `window`.

Per side, a linked item is in one state (fingerprints over mapped content, never stamps):
  A: unchanged | changed | deleted (absent, link span in window) | left (absent, span outside)
  G: unchanged | changed | deleted (cancelled, or absent from a full listing with span in window)
     | left (absent from a full listing, span outside) | unseen (absent from an incremental set)
     | unsupported (a rule/exception Advoware cannot hold)
WP = write protection, or the item is a special appointment (negative frNr, read-only).

Decision table, row = (A state, G state) → action (phase); "—" = nothing:
| A         | G                     | action                                                        |
|-----------|-----------------------|---------------------------------------------------------------|
| unchanged | unchanged/unseen/left | —                                                             |
| unchanged | changed               | update_advoware (4); WP: update_google = revert (4) + report  |
| unchanged | deleted               | delete_advoware (3), confirm G gone; WP: create_google (1)    |
| unchanged | unsupported           | report only (Advoware's version kept, Google left alone)      |
| changed   | unchanged/unseen/left | update_google (4)                                             |
| changed   | changed               | same content → link (4); else conflict_policy:                |
|           |                       |   advoware_wins → update_google; google_wins → update_advoware|
|           |                       |   (WP: update_google + report); last_change_wins → the side   |
|           |                       |   with the newer stamp (zuletztGeaendertAm vs updated)        |
| changed   | deleted               | create_google (1): the edit wins, the item is recreated       |
| changed   | unsupported           | update_google (4) + report                                    |
| deleted   | unchanged/unseen      | delete_google (3), confirm A gone                             |
| deleted   | changed               | create_advoware (2): the edit wins; WP: delete_google + report |
| deleted   | deleted               | forget (3): drop the link                                     |
| deleted   | unsupported           | report; WP: delete_google (3)                                 |
| left      | any                   | — (only left the window: never deleted)                       |

Unlinked items:
- Advoware, in scope: the Google event with the deterministic id or with our marker for (employee,
  frNr) → adopt (link; rewrite only if content differs); else an unmarked, unlinked Google event with
  the same (start, end, all-day, title) → adopt (rewrite with marker); else create_google (phase 1).
  Shared pool (kuerzel '', 'ALLE', 'Allgemein') unless `include_shared_pool`: report, nothing else.
- Google, not cancelled: unsupported → report; marker of another employee → report; a *copy* (our
  marker, but its frNr is linked to or adopted by another event, and the id is not the frNr's
  deterministic one: a "this and following" split in Google copies every field) → like an unmarked
  event; our marker but its frNr not in Advoware's listing → orphan: delete_google, confirm A gone
  (unless the event is outside the window); no marker → create_advoware (phase 2), under WP: report,
  leave alone; but one that ended before the window (an incremental listing shows any change) →
  report left_window (one beyond the window's end is carried: the window reaches it later, an
  unchanged event is not listed again); a series with standing exceptions → report
  `unsupported_rule`, not created.
- Series exceptions (items with `recurringEventId`) never enter this table: series_exceptions.py
  decides about them (`plan_exceptions`, after the table), with the hub's rows of known exceptions.
Safety (all actions withheld, `stop_reason` set, unless `force_deletions`): Advoware returned nothing
while links in the window exist; a full Google listing returned nothing while such links exist;
the calendar emptied in Google (every linked item of the window that Advoware holds, at least
EMPTIED_MIN, deleted there); deletions > `delete_threshold_min` AND > `delete_threshold_ratio` × live
links. The administrator's other answer to a stop, `refill_google`: every row that would delete in
Advoware because the item was deleted in Google recreates it in Google instead (rule "refill").
Under `policy.write_protection` no action targets Advoware (asserted).

In code: `decide()` is the table above, one `case` per row, each row's "WP:" alternative carried in
the decision; write protection is then applied as its own step (`protect`); the action's `rule`
names the row's decision and its `row` the two states (fields, never parsed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Literal, TypedDict

from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.ids import event_id
from include.calendar_engine.mapping_advoware import (
    NotRepresentable,
    changed_at_of,
    frnr_of,
    from_advoware,
    is_shared_pool,
    owner_code,
    to_advoware,
)
from include.calendar_engine.mapping_google import from_google, is_cancelled, to_google
from include.calendar_engine.marker import ORIGIN_ADVOWARE, marker_of
from include.calendar_engine.models import Appointment, Unsupported
from include.calendar_engine.plan import (
    ORPHAN,
    Action,
    Adopt,
    CreateAdvoware,
    CreateGoogle,
    DeleteAdvoware,
    DeleteGoogle,
    Forget,
    HubLink,
    Link,
    Plan,
    Report,
    UpdateAdvoware,
    UpdateGoogle,
)
from include.calendar_engine.policy import Policy, Window
from include.calendar_engine.series_exceptions import UNSUPPORTED_DETAIL, ExceptionItem, HubException, is_exception
from include.calendar_engine.series_exceptions import read_exception as read_series_exception
from include.calendar_engine.series_planning import plan_exceptions, standing_deviations
from include.calendar_engine.timeutil import parse_local_stamp, parse_rfc3339

EMPTIED_MIN = 2  # an "emptied" calendar lost at least this many linked appointments at once
UNCHANGED, CHANGED, DELETED, LEFT, UNSEEN, UNSUPPORTED = (
    "unchanged",
    "changed",
    "deleted",
    "left",
    "unseen",
    "unsupported",
)
QUIET = (UNCHANGED, UNSEEN, LEFT)  # Google states that ask nothing of a changed Advoware item

WP_REPORT = "<write protection>"  # the report kind of a protected row: write_protected_revert or
#                                   special_read_only (a read-only item), decided by `protect`
GOOGLE_REASON = "<the Google event's unsupported pattern>"


@dataclass(frozen=True)
class Decision:
    """What one row of the decision table does: an action's class (None: nothing to write), the rule
    (its name in the plan), a report beside it, and the row's alternative under write protection."""

    action: type[Action] | None
    rule: str
    report: str | None = None
    detail: str = ""
    under_wp: Decision | None = None

    @property
    def kind(self) -> str | None:
        return self.action.spec.name if self.action is not None else None


NOTHING = Decision(None, "nothing")
REVERT = Decision(UpdateGoogle, "revert", WP_REPORT, "google change reverted")
RECREATE = Decision(CreateGoogle, "recreate", WP_REPORT, "google deletion reverted")
DISCARD = Decision(DeleteGoogle, "discard", WP_REPORT, "google change discarded")
REFILL = Decision(CreateGoogle, "refill")  # the administrator's refill after a safety stop
PROTECTED_DELETE = Decision(DeleteGoogle, "write_protected", "unsupported_rule", "advoware deleted")
# an unlinked event a person made in Google (no marker)
NEW_GOOGLE = Decision(
    CreateAdvoware, "new_google", under_wp=Decision(None, "new_google", "write_protected_new_google", "left alone")
)


def decide(a: str, g: str, *, same_content: bool, advoware_wins: bool) -> Decision:
    """The decision table of a linked item: (Advoware state, Google state) → what to do."""
    match (a, g):
        case ("left", _) | ("unchanged", "unchanged" | "unseen" | "left"):
            return NOTHING
        case ("unchanged", "changed"):
            return Decision(UpdateAdvoware, "google_changed", under_wp=REVERT)
        case ("unchanged", "deleted"):
            return Decision(DeleteAdvoware, "google_deleted", under_wp=RECREATE)
        case ("unchanged", "unsupported"):
            return Decision(None, "google_unsupported", "unsupported_rule", GOOGLE_REASON)
        case ("changed", "unchanged" | "unseen" | "left"):
            return Decision(UpdateGoogle, "advoware_changed")
        case ("changed", "changed") if same_content:
            return Decision(Link, "same_content")
        case ("changed", "changed") if advoware_wins:
            return Decision(UpdateGoogle, "advoware_wins")
        case ("changed", "changed"):
            return Decision(UpdateAdvoware, "google_wins", under_wp=REVERT)
        case ("changed", "deleted"):
            return Decision(CreateGoogle, "edit_wins")
        case ("changed", "unsupported"):
            return Decision(UpdateGoogle, "replaces_unsupported", "unsupported_rule", "replaced by advoware")
        case ("deleted", "unchanged" | "unseen"):
            return Decision(DeleteGoogle, "advoware_deleted")
        case ("deleted", "changed"):
            return Decision(CreateAdvoware, "edit_wins", under_wp=DISCARD)
        case ("deleted", "deleted"):
            return Decision(Forget, "both_deleted")
        case ("deleted", "unsupported"):
            return Decision(None, "advoware_deleted", "unsupported_rule", "advoware deleted", under_wp=PROTECTED_DELETE)
    raise ValueError(f"no row of the decision table for Advoware {a!r}, Google {g!r}")


def protect(decision: Decision, *, write_protection: bool, read_only: bool) -> Decision:
    """Write protection (or a read-only item): a row's protected alternative replaces it."""
    if not (write_protection or read_only) or decision.under_wp is None:
        return decision
    alternative = decision.under_wp
    if alternative.report == WP_REPORT:
        kind = "special_read_only" if read_only and not write_protection else "write_protected_revert"
        alternative = replace(alternative, report=kind)
    return alternative


@dataclass
class AdvowareItem:
    raw: dict[str, Any]
    frnr: int
    owner: str
    appt: Appointment | None
    fp: str | None
    changed_at: str | None
    excluded: bool


@dataclass
class GoogleItem:
    raw: dict[str, Any]
    id: str
    cancelled: bool
    appt: Appointment | None
    unsupported: str | None
    fp: str | None
    updated: str | None
    m_employee: str | None
    m_frnr: int | None
    m_origin: str | None


@dataclass(frozen=True)
class Version:
    """One side's version of an item written for the other: the body, its content fingerprint as
    written, its span (ISO dates)."""

    body: dict[str, Any]
    fingerprint: str
    span: tuple[str, str]


class Stamps(TypedDict):
    """The keywords of a `LinkWrite` action's link values (a TypedDict: mypy checks each one)."""

    advoware_fingerprint: str | None
    google_fingerprint: str | None
    span_start: str | None
    span_end: str | None
    google_updated: str | None


class ItemStamps(Stamps):
    """`Stamps` and the ids and Advoware stamp of an action about a known Advoware item."""

    employee: str
    frnr: int
    google_event_id: str
    advoware_changed_at: str | None


def stamps(advoware_fp: str | None, google_fp: str | None, span: tuple[str, str], g: GoogleItem | None) -> Stamps:
    """What a link holds after a write: both sides' content fingerprints, the span, Google's stamp."""
    first, last = span
    return {
        "advoware_fingerprint": advoware_fp,
        "google_fingerprint": google_fp,
        "span_start": first,
        "span_end": last,
        "google_updated": g.updated if g else None,
    }


def _iso(d: date) -> str:
    return d.isoformat()


class _Planner:
    def __init__(
        self,
        employee: str,
        policy: Policy,
        window: Window,
        google_complete: bool,
        plan: Plan,
        rows: Iterable[HubException] = (),
    ):
        self.employee, self.policy, self.window, self.complete, self.plan = (
            employee,
            policy,
            window,
            google_complete,
            plan,
        )
        self.exceptions: dict[str, ExceptionItem] = {}  # series exceptions listed, by instance id
        self.rows = {r.instance_id: r for r in rows if r.employee == employee}  # the hub's known ones

    # -- reading ---------------------------------------------------------------------------------
    def read_advoware(self, items: Iterable[dict[str, Any]]) -> dict[int, AdvowareItem]:
        out: dict[int, AdvowareItem] = {}
        for raw in items:
            try:
                frnr = frnr_of(raw)
            except (TypeError, ValueError):
                frnr = None
            if frnr is None:
                self.report("invalid_advoware", detail="Termin without frNr")
                continue
            shared = is_shared_pool(raw)
            appt: Appointment | None = None
            excluded = shared and not self.policy.include_shared_pool
            if excluded:
                self.report("shared_pool_skipped", frnr=frnr)
            else:
                try:
                    appt = from_advoware(raw, self.employee)
                except (TypeError, ValueError) as exc:
                    self.report("invalid_advoware", frnr=frnr, detail=type(exc).__name__)
                    excluded = True
            out[frnr] = AdvowareItem(
                raw=raw,
                frnr=frnr,
                owner=owner_code(raw),
                appt=appt,
                fp=fingerprint(appt) if appt else None,
                changed_at=changed_at_of(raw),
                excluded=excluded,
            )
        return out

    def read_google(self, items: Iterable[dict[str, Any]]) -> dict[str, GoogleItem]:
        out: dict[str, GoogleItem] = {}
        for raw in items:
            gid = raw.get("id")
            if not gid:
                continue
            if is_exception(raw):
                # one occurrence moved, changed or cancelled: never a master, an adoption or an orphan
                self.exceptions[gid] = read_series_exception(raw)
                continue
            m_emp, m_frnr, m_origin = marker_of(raw)
            cancelled = is_cancelled(raw)
            appt: Appointment | None = None
            unsupported = None
            if not cancelled:
                parsed = from_google(raw)
                if isinstance(parsed, Unsupported):
                    unsupported = parsed.reason
                else:
                    appt = parsed
            out[gid] = GoogleItem(
                raw=raw,
                id=gid,
                cancelled=cancelled,
                appt=appt,
                unsupported=unsupported,
                fp=fingerprint(appt) if appt else None,
                updated=raw.get("updated"),
                m_employee=m_emp,
                m_frnr=m_frnr,
                m_origin=m_origin,
            )
        return out

    # -- output helpers ----------------------------------------------------------------------------
    def report(
        self, kind: str, *, frnr: int | None = None, google_event_id: str | None = None, detail: str = ""
    ) -> None:
        self.plan.reports.append(
            Report(kind=kind, employee=self.employee, frnr=frnr, google_event_id=google_event_id, detail=detail)
        )

    def add(self, action: Action | None) -> None:
        if action is not None:
            self.plan.add(action)

    def _span(self, appt: Appointment) -> tuple[str, str]:
        first, last = appt.span()
        return _iso(first), _iso(last)

    def _item_stamps(self, a: AdvowareItem, gid: str, stored: Stamps) -> ItemStamps:
        """`stored` with the ids of `a`'s action (Google event `gid`) and Advoware's stamp as listed."""
        return {
            **stored,
            "employee": self.employee,
            "frnr": a.frnr,
            "google_event_id": gid,
            "advoware_changed_at": a.changed_at,
        }

    def _google_version(self, a: AdvowareItem, gid: str, g: GoogleItem | None) -> tuple[Version, ItemStamps]:
        """Advoware's version of `a` as the body of Google event `gid`, and what its link then holds."""
        assert a.appt is not None
        origin = (g.m_origin if g and g.m_origin else None) or ORIGIN_ADVOWARE
        body = to_google(
            a.appt, employee=self.employee, frnr=a.frnr, origin=origin, anonymize=self.policy.anonymize, google_id=gid
        )
        written = from_google(body)
        assert isinstance(written, Appointment)
        v = Version(body, fingerprint(written), self._span(a.appt))
        return v, self._item_stamps(a, gid, stamps(a.fp, v.fingerprint, v.span, g))

    def create_google(
        self, rule: str, a: AdvowareItem, gid: str, g: GoogleItem | None, row: str | None = None
    ) -> CreateGoogle:
        """Advoware's version of `a` inserted as Google event `gid` (undeleted if it was cancelled)."""
        v, stored = self._google_version(a, gid, g)
        return CreateGoogle(rule=rule, row=row, google_body=v.body, **stored)

    def update_google(
        self, rule: str, a: AdvowareItem, gid: str, g: GoogleItem | None, link: HubLink, row: str
    ) -> UpdateGoogle:
        """Advoware's version of `a` written over Google event `gid` (`link`: the hub row, whose Google
        fingerprint stands for an event the incremental listing did not return)."""
        v, stored = self._google_version(a, gid, g)
        seen = g.fp if g else link.google_fingerprint
        return UpdateGoogle(rule=rule, row=row, google_body=v.body, google_seen_fingerprint=seen, **stored)

    def adopt(self, a: AdvowareItem, g: GoogleItem, rule: str, *, rewrite: bool) -> None:
        """Link Google's event `g` to `a`; its body is rewritten only if its content differs (or
        `rewrite`: a match by content, which gets our marker)."""
        v, stored = self._google_version(a, g.id, g)
        keep = not rewrite and v.fingerprint == g.fp
        self.add(Adopt(rule=rule, google_body=None if keep else v.body, **stored))

    def _advoware_version(self, g: GoogleItem, a: AdvowareItem | None) -> tuple[Version, Stamps] | None:
        """Google's version of `g` as the body of a Termin (`a`: the current item), and what its link
        then holds; None (and a report) if Advoware cannot hold it."""
        assert g.appt is not None
        canon = g.appt
        if a is not None and a.appt is not None and self.policy.anonymize:
            # Google only holds an anonymised copy: take times/flags from Google, texts from Advoware.
            canon = replace(canon, title=a.appt.title, note=a.appt.note, location=a.appt.location, matter=a.appt.matter)
        canon = replace(canon, frnr=a.frnr if a else None)
        try:
            body = to_advoware(canon, self.employee, owner=a.owner if a and a.owner else None)
        except NotRepresentable as exc:
            self.report("unsupported_rule", frnr=a.frnr if a else None, google_event_id=g.id, detail=str(exc))
            return None
        written = from_advoware(body, self.employee)
        v = Version(body, fingerprint(written), self._span(written))
        return v, stamps(v.fingerprint, g.fp, v.span, g)

    def create_advoware(self, rule: str, g: GoogleItem, row: str | None) -> CreateAdvoware | None:
        """Google's event `g` created in Advoware."""
        version = self._advoware_version(g, None)
        if version is None:
            return None
        v, stored = version
        return CreateAdvoware(
            rule=rule, row=row, employee=self.employee, google_event_id=g.id, advoware_body=v.body, **stored
        )

    def update_advoware(self, rule: str, g: GoogleItem, a: AdvowareItem, row: str) -> UpdateAdvoware | None:
        """Google's version of `g` written over Advoware's item `a`."""
        version = self._advoware_version(g, a)
        if version is None:
            return None
        v, stored = version
        return UpdateAdvoware(rule=rule, row=row, advoware_body=v.body, **self._item_stamps(a, g.id, stored))

    # -- decisions -----------------------------------------------------------------------------------
    def left_window(self, link: HubLink, g: GoogleItem | None) -> bool:
        if link.span_start and link.span_end:
            first, last = date.fromisoformat(link.span_start), date.fromisoformat(link.span_end)
        elif g is not None and g.appt is not None:
            first, last = g.appt.span()
        else:
            return False  # unknown: assume in the window; deletions are confirmed by the executor
        return not self.window.overlaps(first, last)

    def has_standing_exceptions(self, g: GoogleItem) -> bool:
        return g.appt is not None and standing_deviations(self, g.id, g.appt)

    def comparable(self, appt: Appointment) -> dict[str, Any]:
        content = appt.content()
        if self.policy.anonymize:
            for key in ("title", "note", "location", "matter"):
                content.pop(key)
        return content

    def winner(self, a: AdvowareItem, g: GoogleItem) -> str:
        rule = self.policy.conflict_policy
        if rule == "google_wins":
            return "google"
        if rule == "last_change_wins":
            a_at, g_at = parse_local_stamp(a.changed_at), parse_rfc3339(g.updated)
            if a_at is not None and g_at is not None and g_at > a_at:
                return "google"
        return "advoware"

    def states(self, link: HubLink, a: AdvowareItem | None, g: GoogleItem | None) -> tuple[str, str]:
        """The linked item's state on each side (see the table)."""
        if a is not None:
            a_state = CHANGED if a.fp != link.advoware_fingerprint else UNCHANGED
        else:
            a_state = LEFT if self.left_window(link, g) else DELETED
        if g is not None:
            if g.cancelled:
                g_state = DELETED
            elif g.unsupported is not None:
                g_state = UNSUPPORTED
            else:
                g_state = CHANGED if g.fp != link.google_fingerprint else UNCHANGED
        elif not self.complete:
            g_state = UNSEEN
        else:
            g_state = LEFT if self.left_window(link, g) else DELETED
        return a_state, g_state

    def decide_link(self, link: HubLink, a: AdvowareItem | None, g: GoogleItem | None) -> None:
        """A linked item: its states → the table's decision → write protection → the action."""
        assert link.frnr is not None and link.google_event_id is not None
        if a is not None and a.excluded:
            return
        a_state, g_state = self.states(link, a, g)
        same = advoware_wins = False
        if a_state == g_state == CHANGED:
            assert a is not None and g is not None and a.appt is not None and g.appt is not None
            same = self.comparable(a.appt) == self.comparable(g.appt)
            advoware_wins = self.winner(a, g) == "advoware"
        read_only = link.frnr < 0 or (a is not None and a.appt is not None and a.appt.read_only)
        decision = protect(
            decide(a_state, g_state, same_content=same, advoware_wins=advoware_wins),
            write_protection=self.policy.write_protection,
            read_only=read_only,
        )
        if self.policy.refill_google and decision.action is DeleteAdvoware:
            decision = REFILL
        row = f"{a_state}/{g_state}"
        if decision.action is not None:
            self.add(self.linked_action(decision.action, decision.rule, row, link, a, g))
        if decision.report is not None:
            frnr = a.frnr if a is not None else link.frnr
            detail = (g.unsupported or "") if decision.detail == GOOGLE_REASON and g else decision.detail
            self.report(decision.report, frnr=frnr, google_event_id=link.google_event_id, detail=detail)

    def linked_action(
        self, action: type[Action], rule: str, row: str, link: HubLink, a: AdvowareItem | None, g: GoogleItem | None
    ) -> Action | None:
        """The action of a decision about a linked item, by its class."""
        gid = link.google_event_id
        assert gid is not None and link.frnr is not None
        if action is UpdateGoogle:
            assert a is not None
            return self.update_google(rule, a, gid, g, link, row)
        if action is CreateGoogle:
            assert a is not None
            return self.create_google(rule, a, gid, g, row)
        if action is UpdateAdvoware:
            assert a is not None and g is not None
            return self.update_advoware(rule, g, a, row)
        if action is CreateAdvoware:
            assert g is not None
            return self.create_advoware(rule, g, row)
        if action is DeleteAdvoware:
            assert a is not None
            confirm: Literal["google"] | None = "google" if g is None else None
            return DeleteAdvoware(
                rule=rule,
                row=row,
                employee=self.employee,
                frnr=a.frnr,
                google_event_id=gid,
                advoware_changed_at=a.changed_at,
                confirm_absent=confirm,
            )
        if action is DeleteGoogle:
            return DeleteGoogle(rule=rule, row=row, employee=self.employee, frnr=link.frnr, google_event_id=gid)
        if action is Forget:
            return Forget(rule=rule, row=row, employee=self.employee, frnr=link.frnr, google_event_id=gid)
        if action is Link:
            assert a is not None and g is not None and a.appt is not None
            return Link(rule=rule, row=row, **self._item_stamps(a, gid, stamps(a.fp, g.fp, self._span(a.appt), g)))
        raise ValueError(f"no action for {action.__name__} on a linked item")


def _content_key(appt: Appointment) -> tuple[Any, ...]:
    c = appt.content()
    return (c["all_day"], c["start"], c["end"], c["title"])


def _employee(employee: str | None, links: list[HubLink], advoware_items: list[dict[str, Any]]) -> str:
    if employee:
        return employee
    names = {link.employee for link in links}
    if len(names) == 1:
        return names.pop()
    if not names:
        owners = {owner_code(r) for r in advoware_items if not is_shared_pool(r)}
        if len(owners) == 1:
            return owners.pop()
    raise ValueError("plan_sync needs the employee (pass employee=...)")


def plan_sync(
    links: Iterable[HubLink],
    advoware_items: Iterable[dict[str, Any]],
    google_items: Iterable[dict[str, Any]],
    google_complete: bool,
    policy: Policy,
    window: Window,
    *,
    employee: str | None = None,
    exceptions: Iterable[HubException] = (),
) -> Plan:
    """The plan of one employee; `exceptions`: the hub's rows of the series exceptions it knows."""
    links, advoware_items, google_items = list(links), list(advoware_items), list(google_items)
    employee = _employee(employee, links, advoware_items)
    plan = Plan(
        employee=employee,
        window_start=_iso(window.start),
        window_end=_iso(window.end),
        google_complete=google_complete,
        policy=policy.to_dict(),
    )
    p = _Planner(employee, policy, window, google_complete, plan, exceptions)
    adv = p.read_advoware(advoware_items)
    goog = p.read_google(google_items)

    live = sorted(
        (
            lk
            for lk in links
            if lk.employee == employee and lk.status != "deleted" and lk.frnr is not None and lk.google_event_id
        ),
        key=lambda lk: (lk.frnr, lk.google_event_id),
    )
    linked_frnrs = {lk.frnr for lk in live}
    linked_ids = {lk.google_event_id for lk in live}
    for link in live:
        p.decide_link(link, adv.get(link.frnr), goog.get(link.google_event_id))  # type: ignore[arg-type]

    # Unlinked Advoware items: adopt by marker, adopt by content, or create in Google.
    # frNr → the one event that is its twin (every live link has both ids)
    claimed: dict[int, str] = {lk.frnr: lk.google_event_id for lk in live if lk.frnr is not None and lk.google_event_id}
    used: set[str] = set()
    by_marker: dict[int, GoogleItem] = {}
    for g in sorted(goog.values(), key=lambda x: x.id):
        if g.m_frnr is not None and g.m_employee in (None, employee) and g.id not in linked_ids:
            by_marker.setdefault(g.m_frnr, g)
    by_content: dict[tuple[Any, ...], list[GoogleItem]] = {}
    for g in sorted(goog.values(), key=lambda x: x.id):
        if g.appt is not None and g.m_frnr is None and g.id not in linked_ids:
            by_content.setdefault(_content_key(g.appt), []).append(g)
    for frnr in sorted(adv):
        a = adv[frnr]
        if a.excluded or frnr in linked_frnrs or a.appt is None:
            continue
        own = goog.get(event_id(employee, frnr))  # the deterministic id first: never a copy
        candidate = own if own is not None and own.appt is not None else by_marker.get(frnr)
        if (
            candidate is not None
            and candidate.id not in linked_ids
            and candidate.appt is not None
            and candidate.id not in used
        ):
            used.add(candidate.id)
            claimed[frnr] = candidate.id
            p.adopt(a, candidate, "marker", rewrite=False)
            continue
        matches = [g for g in by_content.get(_content_key(a.appt), []) if g.id not in used]
        if matches:
            used.add(matches[0].id)
            p.adopt(a, matches[0], "content", rewrite=True)
            continue
        p.add(p.create_google("new_advoware", a, event_id(employee, frnr), None))

    # Unlinked Google events: create in Advoware (unless write protected), orphans, reports.
    for gid in sorted(goog):
        g = goog[gid]
        if gid in linked_ids or gid in used or g.cancelled:
            continue
        if g.unsupported is not None:
            p.report("unsupported_rule", google_event_id=gid, detail=g.unsupported)
            continue
        assert g.appt is not None
        if g.m_frnr is not None and g.m_employee not in (None, employee):
            p.report("foreign_marker", frnr=g.m_frnr, google_event_id=gid)
            continue
        copied = (
            g.m_frnr is not None and claimed.get(g.m_frnr) not in (None, gid) and gid != event_id(employee, g.m_frnr)
        )
        if g.m_frnr is not None and not copied:
            if g.m_frnr in adv:
                continue  # its Advoware item is out of scope (shared pool) or unreadable
            first, last = g.appt.span()
            if window.overlaps(first, last):
                p.add(DeleteGoogle(rule=ORPHAN, row=None, employee=employee, frnr=g.m_frnr, google_event_id=gid))
            continue
        if g.appt.span()[1] < window.start:  # the past before the window is not synced (nor listed in full)
            p.report("left_window", google_event_id=gid, detail="ended before the window: not carried")
            continue
        if g.appt.recurrence is not None and p.has_standing_exceptions(g):
            # Advoware cannot hold the exceptions, and the bare rule would flatten them
            p.report("unsupported_rule", google_event_id=gid, detail=UNSUPPORTED_DETAIL)
            continue
        decision = protect(NEW_GOOGLE, write_protection=policy.write_protection, read_only=False)
        if decision.action is None:
            p.report(decision.report or "", google_event_id=gid, detail=decision.detail)
            continue
        p.add(p.create_advoware(decision.rule, g, None))

    plan_exceptions(p, live, adv, goog, claimed)
    _safety(plan, policy, live, advoware_items, google_items, google_complete, p)
    if policy.write_protection and any(a.spec.writes_advoware for a in plan.actions()):
        raise RuntimeError("planner bug: an action targets Advoware under write protection")
    return plan


def _emptied(plan: Plan, in_window: list[HubLink], advoware_items: list[dict[str, Any]]) -> int:
    """How many appointments the calendar lost in Google, if it lost every linked one of the window
    that Advoware still holds (an emptied calendar, not a few cancellations); else 0."""
    held = set()
    for raw in advoware_items:
        with contextlib.suppress(TypeError, ValueError):
            held.add(frnr_of(raw))
    # special ones (negative frNr) come back anyway
    kept = {lk.frnr for lk in in_window if lk.frnr is not None and lk.frnr in held and lk.frnr > 0}
    gone = {a.frnr for a in plan.actions() if isinstance(a, DeleteAdvoware) and a.rule == "google_deleted"}
    return len(kept) if len(kept) >= EMPTIED_MIN and kept <= gone else 0


def _safety(
    plan: Plan,
    policy: Policy,
    live: list[HubLink],
    advoware_items: list[dict[str, Any]],
    google_items: list[dict[str, Any]],
    google_complete: bool,
    p: _Planner,
) -> None:
    if policy.force_deletions:
        return
    in_window = [lk for lk in live if not p.left_window(lk, None)]
    reason = None
    if in_window and not advoware_items:
        reason = f"advoware returned nothing while {len(in_window)} links are in the window"
    elif in_window and google_complete and not google_items and not policy.refill_google:
        reason = f"google returned nothing while {len(in_window)} links are in the window"
    elif emptied := _emptied(plan, in_window, advoware_items):
        reason = f"google calendar emptied: all {emptied} linked appointments of the window were deleted there"
    else:
        deletions = sum(1 for a in plan.actions() if a.spec.deletion)
        ratio_limit = policy.delete_threshold_ratio * max(1, len(live))
        if deletions > policy.delete_threshold_min and deletions > ratio_limit:
            reason = f"{deletions} deletions exceed the threshold ({len(live)} links)"
    if reason is None:
        return
    plan.stop_reason = reason
    plan.withheld = {k: v for k, v in plan.counts().items() if v and not k.startswith("report")}
    plan.adoptions, plan.phase1, plan.phase2, plan.phase3, plan.phase4 = [], [], [], [], []
