"""What every hook of this provider shares: the hook API (`get_conn()` gives the ready client, the
connection form from provider_info) and the one way a connection is merged over the environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from airflow.sdk import BaseHook
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


class ProviderHook(BaseHook):
    """Base of the project's hooks. `conn_type` names the connection type the hook reads."""

    conn_type: str

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form layout; Airflow 3.2+ reads the same dict from provider_info (one source). Types
        of other providers (postgres, redis, google_cloud_platform) keep their provider's form."""
        from include.airflow_provider.get_provider_info import get_provider_info

        for entry in get_provider_info()["connection-types"]:
            if entry["connection-type"] == cls.conn_type:
                return dict(entry["ui-field-behaviour"])
        return {}


def base_url(host: str, port: int | None, schema: str | None) -> str:
    """The connection's host as a URL: kept if it has a scheme, else `schema` (http/https) or https."""
    if "://" in host:
        return host.rstrip("/")
    scheme = schema if schema in ("http", "https") else "https"
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def extra_field(extra: Mapping[str, Any], conn_type: str, name: str) -> Any:
    """An extra by its plain name, else by the UI's prefixed form `extra__<type>__<name>` (older
    connections); None when empty."""
    for key in (name, f"extra__{conn_type}__{name}"):
        value = extra.get(key)
        if value not in (None, ""):
            return value
    return None


def merged(env: S, values: Mapping[str, Any]) -> S:
    """`env` (the environment and .env) with what the connection sets over it, validated again.
    Fields the connection leaves out keep the environment's value."""
    return type(env).model_validate({**env.model_dump(), **values})
