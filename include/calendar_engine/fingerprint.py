"""Content fingerprint: sha256 over canonical JSON of the mapped fields only.

Timestamps, etags, ids and markers never enter it, so "changed" means a person changed content.
"""

from __future__ import annotations

import hashlib
import json

from include.calendar_engine.models import Appointment

FINGERPRINT_VERSION = "v1"


def fingerprint(appointment: Appointment) -> str:
    payload = json.dumps(appointment.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{FINGERPRINT_VERSION}:{payload}".encode()).hexdigest()
