"""EspoCRM: the API key and the right to read the party entity, and the three webhooks registered,
pointing at this gateway (GATEWAY_PUBLIC_URL) and known to it (a secret in ESPOCRM_WEBHOOK_SECRET)."""

from __future__ import annotations

from include.checks.verdict import Verdict, fail, ok
from include.espocrm.client import EspoCrmClient
from include.espocrm.errors import AuthError, EspoCrmError, ForbiddenError
from include.settings import EspoCrmSettings, Settings

SERVICE = "espocrm"
EVENTS = ("create", "update", "delete")
WEBHOOK_PATH = "/webhooks/vmh/beteiligte/"  # the gateway's routes (webhook_gateway/webhooks.py)


def _why(exc: EspoCrmError) -> str:
    return f"{exc.status or type(exc).__name__}"


def _read_refused(e: EspoCrmSettings, exc: EspoCrmError) -> tuple[str, str]:
    """What the first read's failure says, and its fix: the key, the role's rights, or the address."""
    if isinstance(exc, AuthError):
        return (
            f"API key at {e.base_url}: not accepted ({_why(exc)})",
            "ESPOCRM_API_KEY must be the key of an active API user (Administration → API Users)",
        )
    if isinstance(exc, ForbiddenError):
        return (
            f"read {e.entity}: forbidden ({_why(exc)})",
            f"give the API user's role read and edit on {e.entity} (Administration → Roles)",
        )
    return (
        f"read {e.entity} at {e.base_url}: {_why(exc)}",
        "check ESPOCRM_BASE_URL, ESPOCRM_ENTITY and that EspoCRM answers",
    )


def check(settings: Settings) -> list[Verdict]:
    e = settings.espocrm
    if not e.api_key.get_secret_value():
        return [fail(SERVICE, "ESPOCRM_API_KEY is empty", "Administration → API Users: the key of the API user")]
    client = EspoCrmClient.from_settings(e, max_retries=0)
    try:
        try:
            page = client.list_page(e.entity, max_size=1, select=["id"])
        except EspoCrmError as exc:
            return [fail(SERVICE, *_read_refused(e, exc))]
        verdicts = [ok(SERVICE, f"API key accepted, {e.entity} readable ({page.get('total', '?')} records)")]
        try:
            hooks = client.list_webhooks()
        except EspoCrmError as exc:
            return [
                *verdicts,
                fail(
                    SERVICE,
                    f"list webhooks: {_why(exc)}",
                    "the API user's role needs access to Webhooks (Administration → Roles)",
                ),
            ]
    finally:
        client.close()
    return [*verdicts, _webhooks(settings, hooks)]


def _webhooks(settings: Settings, hooks: list[dict]) -> Verdict:
    entity = settings.espocrm.entity
    public = settings.gateway.public_url.rstrip("/")
    known = {wid for wid, _ in settings.espocrm.webhook_secrets()}
    problems, found = [], []
    for event in EVENTS:
        mine = [h for h in hooks if h.get("event") == f"{entity}.{event}" and h.get("isActive", True)]
        if not mine:
            problems.append(f"{entity}.{event} not registered")
            continue
        wanted = f"{public}{WEBHOOK_PATH}{event}" if public else None
        pointing = [
            h
            for h in mine
            if (str(h.get("url", "")) == wanted if wanted else str(h.get("url", "")).endswith(WEBHOOK_PATH + event))
        ]
        if not pointing:
            problems.append(f"{entity}.{event} points elsewhere ({', '.join(str(h.get('url')) for h in mine)})")
            continue
        secret_for = [h for h in pointing if None in known or h.get("id") in known]
        if not secret_for:
            problems.append(
                f"{entity}.{event} (webhook {pointing[0].get('id')}) has no secret in "
                "ESPOCRM_WEBHOOK_SECRET: its deliveries get 401"
            )
            continue
        found.append(f"{event}={secret_for[0].get('id')}")
    target = public or "any gateway (GATEWAY_PUBLIC_URL unset)"
    if problems:
        return fail(
            SERVICE,
            f"webhooks for {target}: {'; '.join(problems)}",
            "`kanzlei-sync register-webhooks` (with GATEWAY_PUBLIC_URL set, or --gateway-url), then put "
            "the printed ESPOCRM_WEBHOOK_SECRET line into .env and restart the gateway",
        )
    return ok(SERVICE, f"webhooks registered for {target}: {', '.join(found)}")
