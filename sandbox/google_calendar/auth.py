"""OAuth2 for the Calendar sandbox: the JWT-bearer grant at `/token` and bearer-token lookup.

The token remembers its principal: the `sub` claim (the user impersonated under domain-wide
delegation) if present, else the service account (`iss`). Requests without Authorization are the
principal "anonymous". Signatures are verified (RS256) against every key the sandbox knows (keys
written by `sandbox.keys` in this process, or the key file the settings point at); a JWT whose key
id is unknown is accepted unverified, since the sandbox cannot know every key, but its claims are
still checked.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from sandbox import keys

from .errors import GoogleError

ANONYMOUS = "anonymous"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
CALENDAR_SCOPE_PREFIX = "https://www.googleapis.com/auth/calendar"
MAX_ASSERTION_LIFETIME_S = 3600
# Google's token answers for a refused delegation, by fault reason (POST /_sandbox/faults with
# {"match": "token", "status": 401, "reason": "unauthorized_client", "principal": "<employee e-mail>"}):
# delegation not granted to the key's client id / the subject is no active user of the Workspace.
OAUTH_DESCRIPTIONS = {
    "unauthorized_client": "Client is unauthorized to retrieve access tokens using this method, or client not "
    "authorized for any of the scopes requested.",
    "invalid_grant": "Invalid email or User ID",
}
CLOCK_SKEW_S = 300


class OAuthError(Exception):
    """A token-endpoint error: RFC 6749 body {"error", "error_description"}."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Principal:
    name: str  # quota user: delegated user, service account or "anonymous"
    service_account: str | None
    scopes: frozenset[str]

    @property
    def read_only(self) -> bool:
        """True when every granted scope is a read-only one (anonymous: no restriction)."""
        return bool(self.scopes) and all(s.endswith(".readonly") for s in self.scopes)


ANONYMOUS_PRINCIPAL = Principal(ANONYMOUS, None, frozenset())


@dataclass
class _Token:
    principal: Principal
    expires_at: float


class TokenAuthority:
    def __init__(self, key_files: Callable[[], list[str]], lifetime_s: Callable[[], int]) -> None:
        self._key_files = key_files
        self._lifetime_s = lifetime_s
        self._tokens: dict[str, _Token] = {}

    # -- /token ------------------------------------------------------------------------------
    def decode_assertion(self, assertion: str) -> dict[str, Any]:
        """Verify (when the key is known) and check a service-account JWT; returns its claims."""
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: could not be decoded.") from exc
        kid = str(header.get("kid") or "")
        known = self._find_key(kid)
        if known is not None:
            try:
                jwt.decode(
                    assertion,
                    known.public_pem,
                    algorithms=["RS256"],
                    options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
                )
            except jwt.PyJWTError as exc:
                raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.") from exc
            if claims.get("iss") != known.client_email:
                raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        elif header.get("alg") != "RS256":
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        self._check_claims(claims)
        return claims

    def _find_key(self, kid: str) -> keys.KnownKey | None:
        if not kid:
            return None
        key = keys.known_key(kid)
        if key is None:
            for path in self._key_files():
                keys.register_key_file(path)
            key = keys.known_key(kid)
        return key

    @staticmethod
    def _check_claims(claims: dict[str, Any]) -> None:
        now = time.time()
        iss = claims.get("iss")
        if not isinstance(iss, str) or "@" not in iss:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: iss claim is missing or not a service account.")
        aud = claims.get("aud")
        if not isinstance(aud, str) or not (aud == GOOGLE_TOKEN_URI or aud.rstrip("/").endswith("/token")):
            raise OAuthError(
                400,
                "invalid_grant",
                f"Invalid JWT: Failed audience check. The expected value was {GOOGLE_TOKEN_URI}.",
            )
        iat, exp = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(iat, int | float)
            or not isinstance(exp, int | float)
            or exp - iat > MAX_ASSERTION_LIFETIME_S
            or exp < now - CLOCK_SKEW_S
            or iat > now + CLOCK_SKEW_S
        ):
            raise OAuthError(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) "
                "and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        scopes = str(claims.get("scope") or "").split()
        if not any(s.startswith(CALENDAR_SCOPE_PREFIX) for s in scopes):
            raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        sub = claims.get("sub")
        if sub is not None and (not isinstance(sub, str) or "@" not in sub):
            raise OAuthError(400, "invalid_grant", "Invalid email or User ID")

    @staticmethod
    def principal_of(claims: dict[str, Any]) -> Principal:
        sub = claims.get("sub")
        scopes = frozenset(str(claims.get("scope") or "").split())
        return Principal(sub or claims["iss"], claims["iss"], scopes)

    def issue(self, principal: Principal) -> dict[str, Any]:
        lifetime = self._lifetime_s()
        token = "ya29.sandbox." + secrets.token_urlsafe(32)
        self._tokens[token] = _Token(principal, time.time() + lifetime)
        return {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}

    # -- API requests ------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an API request; 401 authError for an unknown or expired token."""
        if not authorization:
            return ANONYMOUS_PRINCIPAL
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            entry = self._tokens.get(value)
            if entry is not None and entry.expires_at > time.time():
                return entry.principal
            if entry is None and value.count(".") == 2 and not value.startswith("ya29."):
                principal = self._self_signed(value)
                if principal is not None:
                    return principal
        raise GoogleError(
            401,
            "authError",
            "Invalid Credentials",
            location="Authorization",
            location_type="header",
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )

    def _self_signed(self, token: str) -> Principal | None:
        """google-auth may send a self-signed JWT instead of an access token (no subject, JWT access)."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        known = self._find_key(str(header.get("kid") or ""))
        if (
            known is None
            or claims.get("iss") != known.client_email
            or claims.get("sub") not in (None, known.client_email)
        ):
            return None
        try:
            jwt.decode(token, known.public_pem, algorithms=["RS256"], options={"verify_aud": False})
        except jwt.PyJWTError:
            return None
        return Principal(known.client_email, known.client_email, frozenset(str(claims.get("scope") or "").split()))

    def expire_all(self) -> None:
        self._tokens.clear()
