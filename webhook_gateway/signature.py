"""EspoCRM webhook signatures (docs/external-apis.md), verified on the raw body in constant time.

`Signature`   = base64(<webhookId> ":" lowercase-hex HMAC-SHA256(body, secret))   (EspoCRM >= 9.0)
`X-Signature` = base64(<webhookId> ":" raw 32-byte HMAC-SHA256(body, secret))     (legacy)
Secrets come from ESPOCRM_WEBHOOK_SECRET: "secret" (any webhook) or "webhookId=secret" (that webhook).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Secrets = Sequence[tuple[str | None, str]]
_NO_SECRET = b"\0" * 32


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str  # why not, for the log (never the secret or the body; may quote the claimed webhook id)
    webhook_id: str | None = None
    header: str | None = None
    missing: bool = False  # no signature header at all (the only cause the 401 answer names)


def _decode(header_value: str) -> tuple[str, bytes] | None:
    try:
        raw = base64.b64decode(header_value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    webhook_id, sep, mac = raw.partition(b":")  # the id has no ':'; the raw MAC may contain one
    if not sep or not webhook_id:
        return None
    try:
        return webhook_id.decode("ascii"), mac
    except UnicodeDecodeError:
        return None


def verify(body: bytes, headers: Mapping[str, str], secrets: Secrets) -> Verdict:
    """Accept when either header carries a MAC of `body` under a secret configured for its webhook id."""
    present = [(name, headers.get(name)) for name in ("signature", "x-signature") if headers.get(name)]
    if not present:
        return Verdict(False, "missing Signature / X-Signature header", missing=True)
    if not secrets:
        return Verdict(False, "no webhook secret configured (ESPOCRM_WEBHOOK_SECRET)")
    reason = "signature does not match"
    for name, value in present:
        decoded = _decode(value or "")
        if decoded is None:
            reason = f"{name} header is not base64 of '<webhookId>:<mac>'"
            continue
        webhook_id, mac = decoded
        candidates = [s for wid, s in secrets if wid is None or wid == webhook_id]
        if not candidates:
            reason = f"no secret configured for webhook {webhook_id}"
            hmac.digest(_NO_SECRET, body, "sha256")  # the same work: timing does not tell known ids apart
            continue
        ok = False
        for secret in candidates:  # no early exit: timing does not tell which secret matched
            digest = hmac.digest(secret.encode(), body, "sha256")  # one-shot, in C (OpenSSL)
            expected = digest.hex().encode() if name == "signature" else digest
            ok |= hmac.compare_digest(expected, mac)
        if ok:
            return Verdict(True, "ok", webhook_id, name)
    return Verdict(False, reason)
