"""Airflow adapter: the connection `google_calendar_default` (type google_cloud_platform) becomes a
`GoogleCalendarClient`.

The connection keeps the Google provider's type, so the UI shows the provider's form (key file path
or key JSON). The hook itself is a plain BaseHook that reads the two key fields the way the
provider's GoogleBaseHook does (plain extras or `extra__google_cloud_platform__*`): importing the
provider's hook pulls in google-cloud, grpc and opentelemetry (hundreds of modules, ~0.4 CPU-s in
every task process) for two dictionary look-ups. The provider's own GoogleCalendarHook is not used
because it cannot delegate per employee, ignores api_endpoint and drops nextSyncToken. Extras
`delegation`, `api_endpoint`, `batch_uri`, `token_uri`, `acl_role` override the GOOGLE_* settings.
"""

from __future__ import annotations

import json
from typing import Any

from include import conn_ids
from include.airflow_provider.hooks.base import ProviderHook, extra_field, merged
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import CredentialsError, ServiceAccount, load_key_file
from include.settings import GoogleSettings, get_settings

CONN_TYPE = "google_cloud_platform"
_OVERRIDES = ("delegation", "api_endpoint", "batch_uri", "token_uri", "acl_role")


class GoogleCalendarSyncHook(ProviderHook):
    """The project's default connection id and a client factory."""

    conn_name_attr = "gcp_conn_id"
    default_conn_name = conn_ids.GOOGLE_CALENDAR
    conn_type = CONN_TYPE
    hook_name = "Google Calendar (Kanzlei Sync)"

    def __init__(self, conn_id: str | None = None, *, redis_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id, **kwargs)
        self._redis_url = redis_url
        self._extras: dict[str, Any] | None = None

    @property
    def extras(self) -> dict[str, Any]:
        if self._extras is None:
            conn = self.connection_or_env("GOOGLE_*")
            self._extras = dict(conn.extra_dejson or {}) if conn is not None else {}
        return self._extras

    def service_account_info(self) -> dict[str, Any]:
        keyfile_dict = extra_field(self.extras, CONN_TYPE, "keyfile_dict")
        key_path = extra_field(self.extras, CONN_TYPE, "key_path")
        if keyfile_dict:
            info = keyfile_dict if isinstance(keyfile_dict, dict) else json.loads(keyfile_dict)
            return dict(info)
        if key_path:
            return load_key_file(key_path)
        if not self.extras and get_settings().google.calendar_service_account_path:
            return load_key_file(get_settings().google.calendar_service_account_path)
        raise CredentialsError(f"connection {self.conn_id} has neither keyfile_dict nor key_path")

    def google_settings(self) -> GoogleSettings:
        values: dict[str, Any] = {}
        for name in _OVERRIDES:
            value = extra_field(self.extras, CONN_TYPE, name)
            if value is not None:
                values[name] = str(value).lower() == "true" if name == "delegation" else value
        return merged(get_settings().google, values)

    def get_conn(self) -> GoogleCalendarClient:
        """A new client for each call: a task may hand one to each of its threads."""
        settings = self.google_settings()
        account = ServiceAccount(
            self.service_account_info(), token_uri=settings.token_uri, source=f"connection {self.conn_id}"
        )
        return GoogleCalendarClient.from_settings(settings, redis_url=self._redis_url, account=account)
