"""Airflow hook of the `espocrm` connection type: adapts a connection into an `EspoCrmClient`.

Connection: host = base URL of the EspoCRM site (a bare host name gets https, or the scheme in
`schema`), password = API key of the API user (masked); extras `entity` (default CBeteiligte) and
`timeout_s`. Whatever the connection leaves out comes from `.env` / `ESPOCRM_*`
(include.settings.EspoCrmSettings); with no connection at all the hook runs on `.env` alone.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

from include import conn_ids
from include.airflow_provider.hooks.base import ProviderHook, base_url, extra_field, merged
from include.espocrm.client import EspoCrmClient
from include.settings import EspoCrmSettings


class EspoCrmHook(ProviderHook):
    conn_name_attr = "espocrm_conn_id"
    default_conn_name = conn_ids.ESPOCRM
    conn_type = "espocrm"
    hook_name = "EspoCRM"

    def __init__(self, espocrm_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.espocrm_conn_id = espocrm_conn_id
        self._client: EspoCrmClient | None = None

    def espocrm_settings(self) -> EspoCrmSettings:
        env = EspoCrmSettings()
        try:
            conn = self.get_connection(self.espocrm_conn_id)
        except AirflowNotFoundException:
            self.log.info("no Airflow connection %s: using ESPOCRM_* settings", self.espocrm_conn_id)
            return env
        extra = conn.extra_dejson or {}
        values: dict[str, Any] = {}
        if conn.host:
            values["base_url"] = base_url(conn.host, conn.port, conn.schema)
        if conn.password:
            values["api_key"] = conn.password
        for name in ("entity", "timeout_s"):
            value = extra_field(extra, self.conn_type, name)
            if value is not None:
                values[name] = value
        settings = merged(env, values)
        if settings.api_key.get_secret_value():
            mask_secret(settings.api_key.get_secret_value())
        return settings

    def get_conn(self) -> EspoCrmClient:
        if self._client is None:
            self._client = EspoCrmClient.from_settings(self.espocrm_settings())
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: one list call with the key."""
        try:
            with EspoCrmClient.from_settings(self.espocrm_settings()) as client:
                page = client.list_page(client.entity, max_size=1)
            return True, f"EspoCRM reachable, key accepted, {page.get('total')} records"
        except Exception as exc:
            return False, str(exc)
