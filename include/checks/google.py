"""Google Calendar: the key file, a token for the service account, delegation for each active employee
(or the named ones), and one read of a calendar list (calendar access) per principal.

A refused delegation is Google's token answer `401 unauthorized_client` (delegation not granted to the
key's client id) or `400 invalid_grant` (no such active user in the Workspace); both name the employee.
"""

from __future__ import annotations

from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.errors import HttpError

from include.checks.verdict import Verdict, fail, ok, skip
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import SCOPES, CredentialsError, ServiceAccount
from include.google_calendar.errors import error_info
from include.google_calendar.ratelimit import Backoff
from include.settings import Settings

SERVICE = "google"
TIMEOUT_S = 15.0
UNREACHABLE = "not reachable"


def _oauth_error(exc: Exception) -> str:
    """Google's OAuth error code (`unauthorized_client`, `invalid_grant`, ...) or the exception class."""
    data = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])[:64]
    return type(exc).__name__


def _token(account: ServiceAccount, subject: str | None) -> str | None:
    """None when a token was issued, else why not."""
    try:
        account.credentials(subject).refresh(google_auth_httplib2.Request(httplib2.Http(timeout=TIMEOUT_S)))
    except RefreshError as exc:
        return _oauth_error(exc)
    except (TransportError, OSError, httplib2.HttpLib2Error) as exc:
        return f"{UNREACHABLE} ({type(exc).__name__})"
    return None


def _calendar_list(client: GoogleCalendarClient, email: str | None) -> str | None:
    """None when the principal may read its calendar list, else why not."""
    try:
        client.session_for(email).execute(lambda s: s.calendarList().list(maxResults=1), "calendarList.list")
    except HttpError as exc:
        info = error_info(exc)
        return f"{info.status} {info.reason or ''}".strip()
    except RefreshError as exc:
        return _oauth_error(exc)
    except Exception as exc:  # transport errors after retries: the class names it
        return type(exc).__name__
    return None


def check(settings: Settings, employees: list[dict[str, Any]] | None, only: list[str] | None = None) -> list[Verdict]:
    """`employees`: Advoware's active Mitarbeiter (None = the list could not be read); `only`: Kürzel to check."""
    g = settings.google
    try:
        account = ServiceAccount.from_settings(g)
    except CredentialsError as exc:
        return [
            fail(
                SERVICE,
                f"service-account key: {exc}",
                "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH must name the JSON key of the service account "
                "(IAM → Service accounts → Keys), readable by this process",
            )
        ]
    verdicts = [ok(SERVICE, f"service-account key of {account.email} readable")]
    token_at = g.token_uri or "Google"
    why = _token(account, None)
    if why and why.startswith(UNREACHABLE):
        return [
            *verdicts,
            fail(
                SERVICE,
                f"token for the service account from {token_at}: {why}",
                "check GOOGLE_TOKEN_URI (empty for Google) and the network path to Google",
            ),
        ]
    if why:
        return [
            *verdicts,
            fail(
                SERVICE,
                f"token for the service account from {token_at}: refused ({why})",
                "the key may be deleted or disabled (IAM → Service accounts), or the clock of this machine is off",
            ),
        ]
    verdicts.append(ok(SERVICE, f"token for the service account from {token_at}"))
    client = GoogleCalendarClient(g, account, limiter=None, backoff=Backoff(max_retries=0), timeout_s=TIMEOUT_S)
    if not g.delegation:
        verdicts.append(
            skip(
                SERVICE,
                "delegation: off (shared calendars owned by the service account)",
                "GOOGLE_DELEGATION=true puts each calendar into the employee's own account",
            )
        )
        why = _calendar_list(client, None)
        verdicts.append(
            fail(
                SERVICE,
                f"calendar access of the service account: {why}",
                "enable the Google Calendar API for the key's project",
            )
            if why
            else ok(SERVICE, "calendar access of the service account (calendarList.list)")
        )
        return verdicts
    return verdicts + _delegation(account, client, employees, only)


def _delegation(
    account: ServiceAccount,
    client: GoogleCalendarClient,
    employees: list[dict[str, Any]] | None,
    only: list[str] | None,
) -> list[Verdict]:
    if employees is None:
        return [
            skip(
                SERVICE,
                "delegation: not checked, Advoware's employee list could not be read",
                "fix the Advoware check first",
            )
        ]
    wanted = {c.strip().upper() for c in only or [] if c.strip()}
    people = [
        (str(m["kuerzel"]).strip(), str(m.get("email") or ""))
        for m in employees
        if not wanted or str(m["kuerzel"]).strip().upper() in wanted
    ]
    people = [(k, e) for k, e in people if e]
    if not people:
        return [skip(SERVICE, "delegation: no active employee with an e-mail address to check")]
    refused, no_access = [], []
    for kuerzel, email in people:
        why = _token(account, email)
        if why:
            refused.append(f"{kuerzel} ({why})")
            continue
        why = _calendar_list(client, email)
        if why:
            no_access.append(f"{kuerzel} ({why})")
    client_id = account.client_id or account.email
    out = []
    checked = f"delegation ({', '.join(SCOPES)}) for {len(people)} employees"
    if refused:
        out.append(
            fail(
                SERVICE,
                f"{checked}: refused for {', '.join(refused)}",
                f"Admin console → Security → API controls → Domain-wide delegation: client id {client_id} "
                f"with the scope {SCOPES[0]}; invalid_grant for one employee: the address in Advoware is "
                "not an active user of the Workspace",
            )
        )
    else:
        out.append(ok(SERVICE, checked))
    if no_access:
        out.append(
            fail(
                SERVICE,
                f"calendar access refused for {', '.join(no_access)}",
                "the user's Google Calendar service must be on (Admin console → Apps → Calendar)",
            )
        )
    elif len(refused) < len(people):
        out.append(ok(SERVICE, f"calendar access (calendarList.list) for {len(people) - len(refused)} employees"))
    return out
