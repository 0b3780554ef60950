"""Advoware: a fresh token from the security gateway, one read (the employee list), write protection.

The token is fetched anew (no shared cache), so a cached token cannot hide a wrong key.
"""

from __future__ import annotations

from typing import Any

from include.advoware.client import AdvowareClient
from include.advoware.errors import AdvowareAuthError, AdvowareError, AdvowareUnavailable
from include.checks.verdict import Verdict, fail, ok
from include.settings import Settings

SERVICE = "advoware"
CREDENTIALS = (
    "check ADVOWARE_USERNAME, ADVOWARE_PASSWORD, ADVOWARE_APP_ID, ADVOWARE_API_KEY (base64 of the key "
    "the vendor issued), ADVOWARE_KANZLEI and ADVOWARE_DATABASE"
)


def _status(exc: AdvowareError) -> str:
    return f"{type(exc).__name__}{f' {exc.status}' if exc.status else ''}"


def check(settings: Settings, employees: list[dict[str, Any]] | None = None) -> list[Verdict]:
    """`employees`, when given, receives the Mitarbeiter list (the Google check uses it)."""
    s = settings.advoware.model_copy(update={"max_retries": 0, "timeout_s": min(settings.advoware.timeout_s, 15.0)})
    client = AdvowareClient(s)
    try:
        try:
            client.token_cache.get()
        except AdvowareAuthError as exc:
            return [fail(SERVICE, f"token from {s.token_url_base}: refused ({_status(exc)})", CREDENTIALS)]
        except AdvowareUnavailable as exc:
            return [
                fail(
                    SERVICE,
                    f"token from {s.token_url_base}: not reachable ({_status(exc)})",
                    "check ADVOWARE_BASE_URL / ADVOWARE_AUTH_URL and the network path to Advoware",
                )
            ]
        verdicts = [ok(SERVICE, f"token from {s.token_url_base}")]
        try:
            listed = client.list_mitarbeiter()
        except AdvowareError as exc:
            verdicts.append(
                fail(
                    SERVICE,
                    f"read Mitarbeiter: {_status(exc)}",
                    "the token was issued but the API refused the read: check ADVOWARE_ROLE and "
                    "the user's rights in Advoware",
                )
            )
        else:
            active = [m for m in listed if _active(m)]
            without = sum(1 for m in active if not m.get("email"))
            found = (
                f"read Mitarbeiter: {len(listed)} listed, {len(active)} active, {without} active without "
                "e-mail (no calendar for them)"
            )
            verdicts.append(
                ok(SERVICE, found)
                if active
                else fail(
                    SERVICE,
                    found,
                    "Advoware lists no active employee: the calendar sync would do "
                    "nothing; check the Mitarbeiter in Advoware",
                )
            )
            if employees is not None:
                employees.extend(active)
    finally:
        client.close()
    state = (
        "on: nothing is written to Advoware (Google-side edits are reverted)"
        if s.write_protection
        else "off: the sync writes to Advoware"
    )
    verdicts.append(ok(SERVICE, f"write protection {state} (ADVOWARE_WRITE_PROTECTION)"))
    return verdicts


def _active(record: dict[str, Any]) -> bool:
    from include.calendar_sync.employees import _active as is_active

    return bool(str(record.get("kuerzel") or "").strip()) and is_active(record.get("aktiv"))
