"""The Advoware security gateway: `POST /api/v1/Token` with the HMAC-SHA512 check, and bearer tokens.

The check is the one of docs/external-apis.md: signature = base64(HMAC-SHA512(key=base64decode(API key),
msg="<Product>:<AppID>:<Nonce>:<RequestTimeStamp>")); a timestamp more than `clock_skew_s` away
from now (either way) or a nonce seen before is rejected, as are wrong credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The defaults equal .env.example, so `python -m sandbox` accepts the documented credentials.
APP_ID = "sandbox-app"
API_KEY = "c2FuZGJveC1hZHZvd2FyZS1hcGkta2V5LTAxMjM0NTY3ODk="
KANZLEI = "KANZLEI1"
DATABASE = "ADVOWARE"
USERNAME = "sync"
PASSWORD = "sandbox-password"

DEFAULT_TOKEN_TTL_S = 3600
DEFAULT_CLOCK_SKEW_S = 300
TOKEN_FIELDS = (
    "AppID",
    "Kanzlei",
    "Database",
    "User",
    "Role",
    "Product",
    "Password",
    "Nonce",
    "HMAC512Signature",
    "RequestTimeStamp",
)


@dataclass(frozen=True)
class Credentials:
    app_id: str
    api_key: str
    kanzlei: str
    database: str
    username: str
    password: str

    @classmethod
    def from_env(cls) -> Credentials:
        env = os.environ.get
        return cls(
            app_id=env("SANDBOX_ADVOWARE_APP_ID", APP_ID),
            api_key=env("SANDBOX_ADVOWARE_API_KEY", API_KEY),
            kanzlei=env("SANDBOX_ADVOWARE_KANZLEI", KANZLEI),
            database=env("SANDBOX_ADVOWARE_DATABASE", DATABASE),
            username=env("SANDBOX_ADVOWARE_USERNAME", USERNAME),
            password=env("SANDBOX_ADVOWARE_PASSWORD", PASSWORD),
        )


def signature(api_key_b64: str, product: Any, app_id: str, nonce: str, timestamp: str) -> str:
    message = f"{product}:{app_id}:{nonce}:{timestamp}".encode()
    digest = hmac.new(base64.b64decode(api_key_b64), message, hashlib.sha512).digest()
    return base64.b64encode(digest).decode()


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class TokenGateway:
    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.reset()

    def reset(self) -> None:
        self.token_ttl_s: float = DEFAULT_TOKEN_TTL_S
        self.clock_skew_s: float = DEFAULT_CLOCK_SKEW_S
        self._tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self._nonces: dict[str, float] = {}  # nonce -> when it was used

    def revoke_all(self) -> int:
        count = len(self._tokens)
        self._tokens.clear()
        return count

    def is_valid(self, token: str) -> bool:
        expiry = self._tokens.get(token)
        if expiry is None:
            return False
        if time.time() >= expiry:
            del self._tokens[token]
            return False
        return True

    def issue(self, body: Any) -> dict[str, Any]:
        """Check a token request; answer the token body or raise TokenError."""
        if not isinstance(body, dict) or any(body.get(name) in (None, "") for name in TOKEN_FIELDS):
            raise TokenError(400, "invalid_request", f"required fields: {', '.join(TOKEN_FIELDS)}")
        stamp = str(body["RequestTimeStamp"])
        try:
            sent = datetime.fromisoformat(stamp)
        except ValueError:
            raise TokenError(400, "invalid_request", "RequestTimeStamp is not ISO-8601") from None
        if sent.tzinfo is None:
            sent = sent.replace(tzinfo=UTC)
        if abs((datetime.now(UTC) - sent).total_seconds()) > self.clock_skew_s:
            raise TokenError(401, "invalid_timestamp", "RequestTimeStamp too old or in the future")
        creds = self.credentials
        if str(body["AppID"]) != creds.app_id:
            raise TokenError(401, "invalid_client", "unknown AppID")
        expected = signature(creds.api_key, body["Product"], creds.app_id, str(body["Nonce"]), stamp)
        if not hmac.compare_digest(expected, str(body["HMAC512Signature"])):
            raise TokenError(401, "invalid_signature", "HMAC512Signature does not match")
        now = time.time()
        self._prune_nonces(now)
        nonce = str(body["Nonce"])
        if nonce in self._nonces:
            raise TokenError(401, "nonce_reused", "Nonce was used before")
        self._nonces[nonce] = now  # a signed request burns its nonce even if the login then fails
        given = (str(body["Kanzlei"]), str(body["Database"]), str(body["User"]), str(body["Password"]))
        if given != (creds.kanzlei, creds.database, creds.username, creds.password):
            raise TokenError(401, "invalid_grant", "wrong Kanzlei, Database, User or Password")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = now + self.token_ttl_s
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl_s)}

    def _prune_nonces(self, now: float) -> None:
        # A nonce older than twice the skew cannot come back with an acceptable timestamp.
        horizon = now - 2 * self.clock_skew_s
        for nonce in [n for n, seen in self._nonces.items() if seen < horizon]:
            del self._nonces[nonce]
