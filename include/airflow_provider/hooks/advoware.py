"""Airflow hook of the `advoware` connection type: adapts a connection into an `AdvowareClient`.

Connection: host = API base URL (or a bare host name: https is assumed), login = user,
password = password; extras `auth_url`, `configurator_url`, `kanzlei`, `database`, `app_id`,
`api_key` (sensitive), `role`. Fields a connection leaves out come from the environment / `.env`
(`ADVOWARE_*`, see include.settings.AdvowareSettings); with no connection at all the hook runs on
`.env` alone. Write protection is on if either the connection or ADVOWARE_WRITE_PROTECTION says so.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

from include import conn_ids
from include.advoware.client import AdvowareClient
from include.airflow_provider.hooks.base import ProviderHook, base_url, extra_field, merged
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


class AdvowareHook(ProviderHook):
    conn_name_attr = "advoware_conn_id"
    default_conn_name = conn_ids.ADVOWARE
    conn_type = "advoware"
    hook_name = "Advoware"

    def __init__(
        self, advoware_conn_id: str = default_conn_name, *, redis_url: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.advoware_conn_id = advoware_conn_id
        self._redis_url = redis_url
        self._client: AdvowareClient | None = None

    def advoware_settings(self) -> AdvowareSettings:
        env = AdvowareSettings()  # .env / ADVOWARE_* fill whatever the connection leaves out
        try:
            conn = self.get_connection(self.advoware_conn_id)
        except AirflowNotFoundException:
            self.log.info("no Airflow connection %s: using ADVOWARE_* settings", self.advoware_conn_id)
            return env
        extra = conn.extra_dejson or {}
        values: dict[str, Any] = {}
        if conn.host:
            values["base_url"] = base_url(conn.host, conn.port, conn.schema)
        if conn.login:
            values["username"] = conn.login
        if conn.password:
            values["password"] = conn.password
        for name in _EXTRA_FIELDS:
            value = extra_field(extra, self.conn_type, name)
            if value is not None:
                values[name] = value
        values["write_protection"] = env.write_protection or _truthy(extra.get("write_protection", False))
        settings = merged(env, values)
        # registered with the task log masker even if Airflow did not recognise the field names
        for secret in (settings.password.get_secret_value(), settings.api_key.get_secret_value()):
            if secret:
                mask_secret(secret)
        return settings

    def get_conn(self) -> AdvowareClient:
        if self._client is None:
            redis_url = self._redis_url if self._redis_url is not None else Settings().redis_url
            self._client = AdvowareClient(self.advoware_settings(), redis_url=redis_url)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: a token plus one read."""
        try:
            with AdvowareClient(self.advoware_settings()) as client:
                count = len(client.list_mitarbeiter())
            return True, f"Advoware reachable, token accepted, {count} employees"
        except Exception as exc:
            return False, str(exc)
