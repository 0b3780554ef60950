"""Service-account credentials: from the key file (GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH) or from a
key dict (the Airflow connection google_calendar_default, read by include.airflow_provider.hooks.google_calendar).

In shared mode every call runs as the service account; in delegated mode (domain-wide delegation)
as each employee via `with_subject`. The token URI comes from settings when set (the sandbox).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from google.oauth2 import service_account

from include.settings import GoogleSettings

SCOPES = ("https://www.googleapis.com/auth/calendar",)


class CredentialsError(Exception):
    """The service-account key is missing or unreadable (message names the source, never the key)."""


def load_key_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not str(path):
        raise CredentialsError("GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH is not set")
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CredentialsError(f"service-account key file not found: {p}") from exc
    except ValueError as exc:
        raise CredentialsError(f"service-account key file is not JSON: {p}") from exc
    _check(info, str(p))
    return info


def _check(info: Any, source: str) -> None:
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise CredentialsError(f"{source} is not a service-account key")
    for field in ("client_email", "private_key", "token_uri"):
        if not info.get(field):
            raise CredentialsError(f"{source} lacks {field}")


class ServiceAccount:
    """One service-account key; hands out credentials per principal, cached (tokens are reused).

    The key is parsed once: every employee's credentials share its signer (`with_subject`), since
    parsing and checking an RSA key costs ~40 ms of CPU, most of what a quiet employee cost a
    task before (1,000 employees: 40 CPU-s per planning task)."""

    def __init__(self, info: dict[str, Any], *, token_uri: str = "", source: str = "key") -> None:
        _check(info, source)
        self._info = dict(info)
        self._token_uri = token_uri
        self._cache: dict[str | None, service_account.Credentials] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: GoogleSettings) -> ServiceAccount:
        path = settings.calendar_service_account_path
        return cls(load_key_file(path), token_uri=settings.token_uri, source=path)

    @property
    def email(self) -> str:
        return str(self._info["client_email"])

    @property
    def client_id(self) -> str:
        """The key's OAuth client id: what the Workspace admin grants domain-wide delegation to."""
        return str(self._info.get("client_id") or "")

    def credentials(self, subject: str | None = None) -> service_account.Credentials:
        """The service account itself (subject None) or an employee through delegation."""
        with self._lock:
            creds = self._cache.get(subject)
            if creds is None:
                base = self._cache.get(None)
                if base is None:
                    base = service_account.Credentials.from_service_account_info(self._info, scopes=SCOPES)
                    if self._token_uri:
                        base = base.with_token_uri(self._token_uri)
                    self._cache[None] = base
                # A subject disables self-signed JWTs: every token is a JWT-bearer grant.
                creds = base.with_subject(subject) if subject else base
                self._cache[subject] = creds
            return creds
