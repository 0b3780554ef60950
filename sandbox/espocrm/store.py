"""Records of the EspoCRM sandbox: generic entities, Espo-style ids and timestamps, list queries.

Pure data handling, no HTTP: the routes in `sandbox.espocrm.app` call into it. Query semantics follow
EspoCRM's `where` clauses closely enough for an integration: equals/notEquals/in/notIn/isNull/
isNotNull/isTrue/isFalse/contains/startsWith/endsWith, comparisons, and nested and/or/not.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

# Attributes the API never takes from a request body: EspoCRM sets them itself.
SYSTEM_ATTRIBUTES = frozenset(
    {"id", "createdAt", "modifiedAt", "versionNumber", "createdById", "modifiedById", "deleted"}
)
# Attributes that never count as a change for webhooks (EspoCRM's skip list).
NOT_A_CHANGE = frozenset({"modifiedAt", "modifiedById", "versionNumber", "isFollowed"})

MAX_SIZE_LIMIT = 200


class QueryError(ValueError):
    """A list query EspoCRM would refuse (400)."""


def now_stamp() -> str:
    """EspoCRM stores datetimes as UTC 'YYYY-MM-DD HH:MM:SS'."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def new_id(rng: random.Random | None = None) -> str:
    """17 lowercase hex characters like EspoCRM's ids (uniqid: time-ordered, plus 4 random)."""
    if rng is not None:
        return f"{rng.getrandbits(68):017x}"
    return f"{time.time_ns() // 1000:013x}"[-13:] + os.urandom(2).hex()


def _norm(value: Any) -> str | None:
    """Loose comparison like the database does it: 5 == '5', True == 'true' == '1'."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return "1" if value.lower() == "true" else "0"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _cmp_key(value: Any) -> tuple[int, Any]:
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, str(value))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, dict):  # where[0][value][0]=a&where[0][value][1]=b parses to a dict
        return [value[k] for k in sorted(value, key=lambda k: int(k) if str(k).isdigit() else 0)]
    return value if isinstance(value, list) else [value]


def matches(record: dict[str, Any], clause: dict[str, Any]) -> bool:
    kind = clause.get("type")
    attr = clause.get("attribute")
    value = clause.get("value")
    if kind in ("and", "or", "not"):
        subs = [c for c in _as_list(value) if isinstance(c, dict)]
        if kind == "and":
            return all(matches(record, c) for c in subs)
        if kind == "or":
            return any(matches(record, c) for c in subs)
        return not all(matches(record, c) for c in subs)
    if not isinstance(attr, str) or not attr:
        raise QueryError(f"where clause of type {kind!r} needs an attribute")
    actual = record.get(attr)
    if kind == "equals":
        return actual is not None and _norm(actual) == _norm(value)
    if kind == "notEquals":
        return actual is None or _norm(actual) != _norm(value)
    if kind in ("in", "notIn"):
        found = _norm(actual) in {_norm(v) for v in _as_list(value)}
        return found if kind == "in" else not found
    if kind == "isNull":
        return actual is None or actual == ""
    if kind == "isNotNull":
        return actual is not None and actual != ""
    if kind == "isTrue":
        return _norm(actual) == "1"
    if kind == "isFalse":
        return _norm(actual) != "1"
    if kind in ("contains", "startsWith", "endsWith", "like"):
        if actual is None:
            return False
        hay, needle = str(actual).lower(), str(value or "").lower()
        if kind == "like":  # SQL LIKE with % wildcards only, case-insensitive like MySQL
            import fnmatch

            return fnmatch.fnmatchcase(hay, needle.replace("%", "*"))
        return {"contains": needle in hay, "startsWith": hay.startswith(needle), "endsWith": hay.endswith(needle)}[kind]
    if kind in ("greaterThan", "lessThan", "greaterThanOrEquals", "lessThanOrEquals", "after", "before"):
        if actual is None:
            return False
        a, b = _cmp_key(actual), _cmp_key(value)
        if a[0] != b[0]:
            a, b = (1, str(actual)), (1, str(value))
        return {
            "greaterThan": a > b,
            "after": a > b,
            "lessThan": a < b,
            "before": a < b,
            "greaterThanOrEquals": a >= b,
            "lessThanOrEquals": a <= b,
        }[kind]
    raise QueryError(f"unsupported where type {kind!r}")


def parse_bracket_params(items: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn PHP-style query keys (`where[0][value][]=a`) into nested dicts/lists, as PHP does."""
    out: dict[str, Any] = {}
    for key, value in items:
        if "[" not in key:
            out[key] = value
            continue
        head, rest = key.split("[", 1)
        parts = [head] + [p for p in rest.rstrip("]").split("][")]
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `[]` appends
                if not isinstance(node, list):
                    raise QueryError(f"bad query key {key!r}")
                if last:
                    node.append(value)
                    break
                node.append({})
                node = node[-1]
                continue
            nxt_is_append = not last and parts[i + 1] == ""
            if last:
                node[part] = value
            else:
                if part not in node or not isinstance(node[part], (dict, list)):
                    node[part] = [] if nxt_is_append else {}
                node = node[part]
    return out


def where_clauses(raw: Any) -> list[dict[str, Any]]:
    """Normalise `where` from either query form (dict keyed by index, or a JSON list)."""
    clauses = _as_list(raw)
    if not all(isinstance(c, dict) for c in clauses):
        raise QueryError("where must be a list of clauses")
    return clauses


def parse_int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise QueryError(f"{name} must be an integer") from exc


class RecordStore:
    """Entity name -> id -> record (a plain dict with Espo's system attributes)."""

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, dict[str, Any]]] = {}

    def clear(self) -> None:
        self.entities.clear()

    def table(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.entities.setdefault(entity, {})

    def get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        return self.entities.get(entity, {}).get(record_id)

    def insert(
        self, entity: str, data: dict[str, Any], *, user_id: str, record_id: str | None = None
    ) -> dict[str, Any]:
        stamp = now_stamp()
        record = {k: v for k, v in data.items() if k not in SYSTEM_ATTRIBUTES}
        table = self.table(entity)
        record_id = record_id or new_id()
        while record_id in table:  # two creates in the same microsecond with the same random tail
            record_id = new_id()
        record.update(
            id=record_id, createdAt=stamp, modifiedAt=stamp, versionNumber=1, createdById=user_id, modifiedById=user_id
        )
        table[record_id] = record
        return record

    def load(self, entity: str, record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """Seed a record as it is (keeping given system attributes), filling in missing ones."""
        stamp = now_stamp()
        rec = dict(record)
        rec.setdefault("id", new_id(rng))
        rec.setdefault("createdAt", stamp)
        rec.setdefault("modifiedAt", rec["createdAt"])
        rec.setdefault("versionNumber", 1)
        self.table(entity)[str(rec["id"])] = rec
        return rec

    def update(
        self, entity: str, record_id: str, data: dict[str, Any], *, user_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Apply `data`; answer (record, changed attributes). No change: nothing moves."""
        record = self.table(entity)[record_id]
        changed = {
            k: v for k, v in data.items() if k not in SYSTEM_ATTRIBUTES and k not in NOT_A_CHANGE and record.get(k) != v
        }
        if changed:
            record.update(changed)
            record["modifiedAt"] = now_stamp()
            record["modifiedById"] = user_id
            record["versionNumber"] = int(record.get("versionNumber") or 0) + 1
        return record, changed

    def delete(self, entity: str, record_id: str) -> dict[str, Any] | None:
        return self.entities.get(entity, {}).pop(record_id, None)

    def query(
        self,
        entity: str,
        *,
        where: list[dict[str, Any]],
        offset: int,
        max_size: int,
        order_by: str | None,
        order: str | None,
        select: list[str] | None,
    ) -> tuple[int, list[dict[str, Any]]]:
        rows = [r for r in self.entities.get(entity, {}).values() if all(matches(r, c) for c in where)]
        # EspoCRM's default order for a custom entity: createdAt descending; ids break ties stably.
        key = order_by or "createdAt"
        desc = (order or ("desc" if order_by is None else "asc")).lower() == "desc"
        present = [r for r in rows if r.get(key) is not None]
        missing = [r for r in rows if r.get(key) is None]
        present.sort(key=lambda r: (_cmp_key(r[key]), r["id"]), reverse=desc)
        missing.sort(key=lambda r: r["id"])
        rows = present + missing  # NULLs last, as MySQL does for DESC (and we keep it for ASC too)
        page = rows[offset : offset + max_size]
        if select:
            wanted = ["id", *[a for a in select if a != "id"]]
            page = [{a: r.get(a) for a in wanted} for r in page]
        else:
            page = [dict(r) for r in page]
        return len(rows), page
