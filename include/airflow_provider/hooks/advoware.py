"""Airflow hook of the `advoware` connection type: adapts a connection into an `AdvowareClient`.

Connection: host = API base URL (or a bare host name: https is assumed), login = user,
password = password; extras `auth_url`, `configurator_url`, `kanzlei`, `database`, `app_id`,
`api_key` (sensitive), `role`. Fields a connection leaves out come from the environment / `.env`
(`ADVOWARE_*`, see include.settings.AdvowareSettings); with no connection at all the hook runs on
`.env` alone. Write protection is on if either the connection or ADVOWARE_WRITE_PROTECTION says so.
"""

from __future__ import annotations

from typing import Any

from include import conn_ids
from include.advoware.client import AdvowareClient
from include.airflow_provider.hooks.base import ClientHook, mask_secrets, merged
from include.settings import AdvowareSettings, Settings

_EXTRA_FIELDS = (
    "auth_url",
    "configurator_url",
    "kanzlei",
    "database",
    "app_id",
    "api_key",
    "role",
    "timeout_s",
    "max_retries",
)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class AdvowareHook(ClientHook[AdvowareClient]):
    conn_name_attr = "advoware_conn_id"
    default_conn_name = conn_ids.ADVOWARE
    conn_type = "advoware"
    hook_name = "Advoware"

    def __init__(self, conn_id: str | None = None, *, redis_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id, **kwargs)
        self._redis_url = redis_url

    def advoware_settings(self) -> AdvowareSettings:
        env = AdvowareSettings()  # .env / ADVOWARE_* fill whatever the connection leaves out
        conn = self.connection_or_env("ADVOWARE_*")
        if conn is None:
            return env
        values = self.connection_values(conn, _EXTRA_FIELDS, login="username", password="password")
        extra = conn.extra_dejson or {}
        values["write_protection"] = env.write_protection or _truthy(extra.get("write_protection", False))
        settings = merged(env, values)
        mask_secrets(settings.password, settings.api_key)
        return settings

    def new_client(self) -> AdvowareClient:
        redis_url = self._redis_url if self._redis_url is not None else Settings().redis_url
        return AdvowareClient(self.advoware_settings(), redis_url=redis_url)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: a token plus one read."""
        try:
            with AdvowareClient(self.advoware_settings()) as client:
                count = len(client.list_mitarbeiter())
            return True, f"Advoware reachable, token accepted, {count} employees"
        except Exception as exc:
            return False, str(exc)
