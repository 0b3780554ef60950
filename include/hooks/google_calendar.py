"""Airflow adapter: the connection `google_calendar_default` (type google_cloud_platform) becomes a
`GoogleCalendarClient`.

The key is read through the Google provider's GoogleBaseHook (extras `keyfile_dict` or
`key_path`); the provider's own GoogleCalendarHook is not used because it cannot delegate per
employee, ignores api_endpoint and drops nextSyncToken (see the contract, section 7). Extras
`delegation`, `api_endpoint`, `batch_uri`, `token_uri` override the GOOGLE_* settings.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import CredentialsError, ServiceAccount, load_key_file
from include.settings import GoogleSettings, get_settings

CONN_ID = "google_calendar_default"
_OVERRIDES = ("delegation", "api_endpoint", "batch_uri", "token_uri", "acl_role")


class GoogleCalendarSyncHook(GoogleBaseHook):
    """GoogleBaseHook with the project's default connection id and a client factory."""

    default_conn_name = CONN_ID
    hook_name = "Google Calendar (Kanzlei Sync)"

    def __init__(self, gcp_conn_id: str = CONN_ID, **kwargs: Any) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)

    def service_account_info(self) -> dict[str, Any]:
        keyfile_dict = self._get_field("keyfile_dict", None)
        key_path = self._get_field("key_path", None)
        if keyfile_dict:
            info = keyfile_dict if isinstance(keyfile_dict, dict) else json.loads(keyfile_dict)
            return dict(info)
        if key_path:
            return load_key_file(key_path)
        raise CredentialsError(f"connection {self.gcp_conn_id} has neither keyfile_dict nor key_path")

    def google_settings(self) -> GoogleSettings:
        base = get_settings().google
        updates: dict[str, Any] = {}
        for name in _OVERRIDES:
            value = self._get_field(name, None)
            if value not in (None, ""):
                updates[name] = str(value).lower() == "true" if name == "delegation" else value
        return base.model_copy(update=updates)

    def get_client(self, *, redis_url: str | None = None, **kw: Any) -> GoogleCalendarClient:
        settings = self.google_settings()
        account = ServiceAccount(self.service_account_info(), token_uri=settings.token_uri,
                                 source=f"connection {self.gcp_conn_id}")
        return GoogleCalendarClient.from_settings(settings, redis_url=redis_url, account=account, **kw)
