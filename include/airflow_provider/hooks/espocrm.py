"""Airflow hook of the `espocrm` connection type: adapts a connection into an `EspoCrmClient`.

Connection: host = base URL of the EspoCRM site (a bare host name gets https, or the scheme in
`schema`), password = API key of the API user (masked); extras `entity` (default CBeteiligte) and
`timeout_s`. Whatever the connection leaves out comes from `.env` / `ESPOCRM_*`
(include.settings.EspoCrmSettings); with no connection at all the hook runs on `.env` alone.
"""

from __future__ import annotations

from include import conn_ids
from include.airflow_provider.hooks.base import ClientHook, mask_secrets, merged
from include.espocrm.client import EspoCrmClient
from include.settings import EspoCrmSettings


class EspoCrmHook(ClientHook[EspoCrmClient]):
    conn_name_attr = "espocrm_conn_id"
    default_conn_name = conn_ids.ESPOCRM
    conn_type = "espocrm"
    hook_name = "EspoCRM"

    def espocrm_settings(self) -> EspoCrmSettings:
        env = EspoCrmSettings()
        conn = self.connection_or_env("ESPOCRM_*")
        if conn is None:
            return env
        settings = merged(env, self.connection_values(conn, ("entity", "timeout_s"), password="api_key"))
        mask_secrets(settings.api_key)
        return settings

    def new_client(self) -> EspoCrmClient:
        return EspoCrmClient.from_settings(self.espocrm_settings())

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: one list call with the key."""
        try:
            with self.new_client() as client:
                page = client.list_page(client.entity, max_size=1)
            return True, f"EspoCRM reachable, key accepted, {page.get('total')} records"
        except Exception as exc:
            return False, str(exc)
