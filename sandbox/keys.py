"""Service-account JSON keys in Google's format, for the Google Calendar sandbox.

`write_service_account_file(path, token_uri)` generates a fresh RSA key and writes the same JSON
Google's console downloads, so `google.oauth2.service_account.Credentials.from_service_account_file`
loads it unchanged. The sandbox's `/token` verifies JWT signatures against the public keys it knows:
keys written in this process are registered here, other key files can be registered by path.

CLI: `python -m sandbox.keys PATH [TOKEN_URI]`.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_CLIENT_EMAIL = "sync@kanzlei-sandbox.iam.gserviceaccount.com"
DEFAULT_TOKEN_URI = "http://127.0.0.1:8102/token"


class KnownKey:
    def __init__(self, kid: str, client_email: str, public_pem: bytes) -> None:
        self.kid = kid
        self.client_email = client_email
        self.public_pem = public_pem


_lock = threading.Lock()
_known: dict[str, KnownKey] = {}  # private_key_id -> public half


def register_key_info(info: dict[str, Any]) -> KnownKey:
    """Remember the public half of a service-account key (a parsed JSON key file)."""
    private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = KnownKey(info["private_key_id"], info["client_email"], public_pem)
    with _lock:
        _known[key.kid] = key
    return key


def register_key_file(path: str | os.PathLike[str]) -> KnownKey | None:
    """Register a key file if it exists and is a service-account key; None otherwise."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        if info.get("type") != "service_account":
            return None
        return register_key_info(info)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def known_key(kid: str) -> KnownKey | None:
    with _lock:
        return _known.get(kid)


def _default_token_uri() -> str:
    try:
        from include.settings import GoogleSettings

        return GoogleSettings().token_uri or DEFAULT_TOKEN_URI
    except Exception:  # settings unreadable: the sandbox default is still right for local runs
        return DEFAULT_TOKEN_URI


def service_account_info(token_uri: str, client_email: str = DEFAULT_CLIENT_EMAIL) -> dict[str, Any]:
    """A new key as the dict Google's console would download (RSA 2048, PKCS#8 PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    project_id = client_email.split("@", 1)[1].split(".", 1)[0] if "@" in client_email else "sandbox"
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + urllib.parse.quote(client_email),
        "universe_domain": "googleapis.com",
    }


def write_service_account_file(
    path: str | os.PathLike[str], token_uri: str | None = None, client_email: str = DEFAULT_CLIENT_EMAIL
) -> dict[str, Any]:
    """Write a new key to `path` (mode 0600) and register its public half; returns the key dict."""
    info = service_account_info(token_uri or _default_token_uri(), client_email)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2)
        fh.write("\n")
    register_key_info(info)
    return info


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 3:
        print("usage: python -m sandbox.keys PATH [TOKEN_URI] [CLIENT_EMAIL]", file=sys.stderr)
        return 2
    info = write_service_account_file(
        args[0], args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else DEFAULT_CLIENT_EMAIL
    )
    print(f"wrote {args[0]} ({info['client_email']}, token_uri {info['token_uri']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
