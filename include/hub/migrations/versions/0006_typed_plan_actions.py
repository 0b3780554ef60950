"""Stored plans in format 2: each action holds its kind and exactly that kind's fields.

Format 1 (no "format" key) held every field of the one former action class in every action, None
where the kind had no use for it. The kinds' fields are written out here as they stood when format 2
was made, so this migration does not change when the plan's classes do (the reader still takes
format 1, this only tidies the stored rows). Downgrade writes format 1 back."""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

PHASE_LISTS = ("adoptions", "phase1", "phase2", "phase3", "phase4")
COMMON = ("rule", "employee", "google_event_id")
STORES_LINK = ("advoware_fingerprint", "google_fingerprint", "span_start", "span_end")
EXCEPTION = ("frnr", "master_event_id", "original_start", "exception_kind", "google_fingerprint")
FIELDS: dict[str, tuple[str, ...]] = {
    "adopt": ("frnr", "google_body", *STORES_LINK, "advoware_changed_at", "google_updated"),
    "create_google": ("frnr", "row", "google_body", *STORES_LINK, "advoware_changed_at", "google_updated"),
    "create_advoware": ("row", "advoware_body", *STORES_LINK, "google_updated"),
    "delete_google": ("frnr", "row"),
    "delete_advoware": ("frnr", "row", "advoware_changed_at", "confirm_absent"),
    "forget": ("frnr", "row"),
    "update_google": (
        "frnr",
        "row",
        "google_body",
        *STORES_LINK,
        "advoware_changed_at",
        "google_updated",
        "google_seen_fingerprint",
    ),
    "update_advoware": ("frnr", "row", "advoware_body", *STORES_LINK, "advoware_changed_at", "google_updated"),
    "link": ("frnr", "row", *STORES_LINK, "advoware_changed_at", "google_updated"),
    "keep_exception": (*EXCEPTION, "google_body"),
    "close_exception": EXCEPTION,
    "revert_exception": (*EXCEPTION, "google_body"),
    "drop_exception": EXCEPTION,
}
FORMAT_1 = (
    "kind",
    "rule",
    "employee",
    "frnr",
    "google_event_id",
    "google_body",
    "advoware_body",
    "advoware_fingerprint",
    "google_fingerprint",
    "span_start",
    "span_end",
    "advoware_changed_at",
    "google_updated",
    "google_seen_fingerprint",
    "confirm_absent",
    "row",
    "master_event_id",
    "original_start",
    "exception_kind",
)


def to_format_2(action: dict[str, Any]) -> dict[str, Any]:
    kind = action["kind"]
    return {"kind": kind, **{name: action.get(name) for name in (*COMMON, *FIELDS[kind])}}


def to_format_1(action: dict[str, Any]) -> dict[str, Any]:
    out = {name: action.get(name) for name in FORMAT_1}
    if action["kind"] == "delete_google":
        out["confirm_absent"] = "advoware"  # format 2 holds it in the kind: always confirmed
    return out


def _rewrite(select: str, convert: Any, stamp: int | None) -> None:
    conn = op.get_bind()
    for plan_id, plan in conn.execute(sa.text(select)).fetchall():
        data = plan if isinstance(plan, dict) else json.loads(plan)
        for key in PHASE_LISTS:
            data[key] = [convert(a) for a in data.get(key) or []]
        if stamp is None:
            data.pop("format", None)
        else:
            data["format"] = stamp
        conn.execute(
            sa.text("UPDATE sync_plans SET plan = CAST(:plan AS jsonb) WHERE id = :id"),
            {"plan": json.dumps(data, sort_keys=True, ensure_ascii=False), "id": plan_id},
        )


def upgrade() -> None:
    _rewrite("SELECT id, plan FROM sync_plans WHERE NOT plan ? 'format'", to_format_2, 2)


def downgrade() -> None:
    _rewrite("SELECT id, plan FROM sync_plans WHERE plan->>'format' = '2'", to_format_1, None)
