"""Deterministic Google event ids (the marker that carries the Advoware id in an event: marker.py).

THE implementation of `event_id(employee, frnr)` for the whole project: an appointment's event id is
a function of (employee, frNr), so a retried insert of the same appointment gets 409 duplicate
instead of creating a second event. The id format is Google's (base32hex, 5..1024 characters; see
docs/external-apis.md).
"""

from __future__ import annotations

import base64
import hashlib

# Google: ids use base32hex (lowercase a-v, 0-9), 5..1024 characters.


def normalize_employee(employee: str) -> str:
    """Advoware Kürzel compare case-insensitively; one spelling feeds the id."""
    return employee.strip().upper()


def event_id(employee: str, frnr: int | str) -> str:
    """52 characters of base32hex over sha256("advoware:<KÜRZEL>:<frNr>")."""
    key = f"advoware:{normalize_employee(employee)}:{int(frnr)}"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return base64.b32hexencode(digest).decode("ascii").lower().rstrip("=")
