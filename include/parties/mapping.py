"""EspoCRM CBeteiligte → Advoware Beteiligte body + Kommunikationen (e-mail, phone), and its fingerprint.

Only the fields the firm syncs are mapped; system attributes (modifiedAt, versionNumber) and the
integration's own write-back fields never enter the mapping, so the fingerprint changes only when a
person changed content. `advoware_content` reads an Advoware record into the same shape, so the sync
can compare what Advoware holds with what it should hold and write only the difference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from include.advoware.beteiligte import BETEILIGTE_FIELDS

FINGERPRINT_VERSION = "p1"

# Advoware Beteiligte fields the sync owns (EspoCRM attributes carry the same names in this firm).
PARTY_FIELDS = BETEILIGTE_FIELDS

# Advoware kommKz values (docs/external-apis.md).
KOMM_TEL_GESCH, KOMM_FAX_GESCH, KOMM_MOBIL, KOMM_MAIL_GESCH, KOMM_TEL_PRIVAT = 1, 2, 3, 4, 6
# EspoCRM phoneNumberData types → kommKz
_PHONE_KINDS = {"mobile": KOMM_MOBIL, "fax": KOMM_FAX_GESCH, "home": KOMM_TEL_PRIVAT}

# Communications the sync created carry this note; the others belong to the firm's staff and are
# never touched.
SYNC_MARK = "EspoCRM"

# What the integration writes back to the EspoCRM record (custom fields of CBeteiligte).
FIELD_BET_NR = "advowareBetNr"
FIELD_SYNC_STATUS = "advowareSyncStatus"
FIELD_LAST_SYNC = "advowareLastSync"


class MappingError(ValueError):
    """The record cannot become an Advoware party (e.g. it has no name); retrying will not help."""


@dataclass(frozen=True, order=True)
class Komm:
    kind: int  # kommKz
    value: str  # Advoware's `tlf`: the number or the address


@dataclass(frozen=True)
class MappedParty:
    body: dict[str, Any]  # Advoware Beteiligte fields (PARTY_FIELDS)
    komms: tuple[Komm, ...]  # sorted, distinct
    fingerprint: str


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _date(value: Any) -> str | None:
    text = _text(value)
    return text[:10] if text else None  # Advoware answers "YYYY-MM-DDT00:00:00"


def _normalise(field: str, value: Any) -> str | None:
    return _date(value) if field == "geburtsdatum" else _text(value)


def _emails(record: Mapping[str, Any]) -> list[str]:
    data = record.get("emailAddressData")
    if isinstance(data, list) and data:
        return [
            e
            for e in (_text(d.get("emailAddress")) for d in data if isinstance(d, Mapping) and not d.get("invalid"))
            if e
        ]
    single = _text(record.get("emailAddress"))
    return [single] if single else []


def _phones(record: Mapping[str, Any]) -> list[Komm]:
    data = record.get("phoneNumberData")
    if isinstance(data, list) and data:
        out = []
        for d in data:
            if not isinstance(d, Mapping) or d.get("invalid"):
                continue
            number = _text(d.get("phoneNumber"))
            if number:
                out.append(Komm(_PHONE_KINDS.get(str(d.get("type") or "").lower(), KOMM_TEL_GESCH), number))
        return out
    single = _text(record.get("phoneNumber"))
    return [Komm(KOMM_TEL_GESCH, single)] if single else []


def fingerprint(body: Mapping[str, Any], komms: Iterable[Komm]) -> str:
    payload = json.dumps(
        {"body": {f: body.get(f) for f in PARTY_FIELDS}, "komms": [[k.kind, k.value] for k in sorted(set(komms))]},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{FINGERPRINT_VERSION}:{payload}".encode()).hexdigest()


def body_fingerprint(body: Mapping[str, Any]) -> str:
    """The fingerprint of a Beteiligte body alone: what a create sent, recorded with its intent so an
    interrupted create is recognised in Advoware by content, whatever changed in EspoCRM since."""
    return fingerprint(body, ())


def map_party(record: Mapping[str, Any]) -> MappedParty:
    """An EspoCRM CBeteiligte record (as GET answers it) → what Advoware should hold."""
    body = {f: _normalise(f, record.get(f)) for f in PARTY_FIELDS}
    if not body["name"]:
        raise MappingError("the party has no name (Advoware requires one)")
    komms = {Komm(KOMM_MAIL_GESCH, e) for e in _emails(record)} | set(_phones(record))
    ordered = tuple(sorted(komms))
    return MappedParty(body, ordered, fingerprint(body, ordered))


def advoware_content(record: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[Komm, ...]]:
    """An Advoware Beteiligter (with `kommunikation`) → (body, the communications the sync manages)."""
    body = {f: _normalise(f, record.get(f)) for f in PARTY_FIELDS}
    komms = tuple(
        sorted(
            {Komm(int(k["kommKz"]), str(k.get("tlf") or "")) for k in managed_komms(record.get("kommunikation") or [])}
        )
    )
    return body, komms


def managed_komms(komms: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [k for k in komms if (k.get("bemerkung") or "") == SYNC_MARK]


def komm_body(komm: Komm) -> dict[str, Any]:
    return {"kommKz": komm.kind, "tlf": komm.value, "bemerkung": SYNC_MARK, "online": komm.kind == KOMM_MAIL_GESCH}


def changed_fields(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    return {f: want.get(f) for f in PARTY_FIELDS if want.get(f) != have.get(f)}
