"""The HMAC token request of Advoware's security gateway (see docs/external-apis.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

from include.settings import AdvowareSettings

TOKEN_PATH = "/api/v1/Token"


def timestamp(now: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, as the security gateway expects."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signature(api_key_b64: str, product: int, app_id: str, nonce: str, request_timestamp: str) -> str:
    """base64(HMAC-SHA512(key=base64-decode(api key), "<Product>:<AppID>:<Nonce>:<RequestTimeStamp>"))."""
    key = base64.b64decode(api_key_b64)
    message = f"{product}:{app_id}:{nonce}:{request_timestamp}".encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha512).digest()).decode()


def token_request_body(s: AdvowareSettings, *, nonce: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """JSON body of `POST <securityGateway>/api/v1/Token`; a fresh nonce every call."""
    nonce = nonce or str(uuid.uuid4())
    ts = timestamp(now)
    return {
        "AppID": s.app_id,
        "Kanzlei": s.kanzlei,
        "Database": s.database,
        "User": s.username,
        "Role": s.role,
        "Product": s.product,
        "Password": s.password.get_secret_value(),
        "Nonce": nonce,
        "HMAC512Signature": signature(s.api_key.get_secret_value(), s.product, s.app_id, nonce, ts),
        "RequestTimeStamp": ts,
    }
