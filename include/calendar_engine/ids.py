"""Deterministic Google event ids and the private extended properties that carry the Advoware id.

THE implementation of `event_id(employee, frnr)` for the whole project: an appointment's event id is
a function of (employee, frNr), so a retried insert of the same appointment gets 409 duplicate
instead of creating a second event. The id format is Google's (base32hex, 5..1024 characters; see
docs/external-apis.md).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

# Google: ids use base32hex (lowercase a-v, 0-9), 5..1024 characters.

# Keys of extendedProperties.private (Google drops keys over 44 characters silently).
PROP_FRNR = "advowareFrNr"
PROP_EMPLOYEE = "advowareEmployee"
PROP_ORIGIN = "syncOrigin"
ORIGIN_ADVOWARE = "advoware"


def normalize_employee(employee: str) -> str:
    """Advoware Kürzel compare case-insensitively; one spelling feeds the id."""
    return employee.strip().upper()


def event_id(employee: str, frnr: int | str) -> str:
    """52 characters of base32hex over sha256("advoware:<KÜRZEL>:<frNr>")."""
    key = f"advoware:{normalize_employee(employee)}:{int(frnr)}"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return base64.b32hexencode(digest).decode("ascii").lower().rstrip("=")


def advoware_properties(employee: str, frnr: int | str) -> dict[str, str]:
    """The private extended properties every event written from Advoware carries."""
    return {PROP_FRNR: str(int(frnr)), PROP_EMPLOYEE: normalize_employee(employee), PROP_ORIGIN: ORIGIN_ADVOWARE}


def with_advoware_properties(body: dict[str, Any], employee: str, frnr: int | str) -> dict[str, Any]:
    """A copy of `body` whose extendedProperties.private holds the Advoware id and origin marker."""
    out = dict(body)
    ext = dict(out.get("extendedProperties") or {})
    private = dict(ext.get("private") or {})
    private.update(advoware_properties(employee, frnr))
    ext["private"] = private
    out["extendedProperties"] = ext
    return out


def frnr_of(event: dict[str, Any]) -> int | None:
    """The Advoware frNr an event carries in its private properties, if any."""
    value = ((event.get("extendedProperties") or {}).get("private") or {}).get(PROP_FRNR)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
