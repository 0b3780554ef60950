"""What every hook of this provider shares: the hook API (`get_conn()` gives the ready client, the
connection form from provider_info), the connection id, the one way a connection is merged over the
environment, and (`ClientHook`) the client kept until `close()`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret
from pydantic import SecretStr
from pydantic_settings import BaseSettings

if TYPE_CHECKING:
    from airflow.sdk import Connection

S = TypeVar("S", bound=BaseSettings)


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ProviderHook(BaseHook):
    """Base of the project's hooks. `conn_type` names the connection type the hook reads,
    `conn_name_attr` the keyword Airflow passes the connection id by, `default_conn_name` the id
    taken when none is given; the id is `self.conn_id`."""

    conn_name_attr: str
    default_conn_name: str
    conn_type: str

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        # Airflow builds a hook as `hook_class(**{conn_name_attr: conn_id})`; our code passes it first
        named = kwargs.pop(self.conn_name_attr, None)
        super().__init__(**kwargs)
        self.conn_id: str = conn_id or named or self.default_conn_name

    def connection_or_env(self, env_name: str) -> Connection | None:
        """The hook's connection; None (logged) when Airflow has none: the `env_name` settings serve."""
        try:
            return self.get_connection(self.conn_id)
        except AirflowNotFoundException:
            self.log.info("no Airflow connection %s: using %s settings", self.conn_id, env_name)
            return None

    def connection_values(
        self, conn: Connection, extras: Iterable[str], *, login: str | None = None, password: str
    ) -> dict[str, Any]:
        """The settings fields the connection sets: `base_url` from its host, the `login` and
        `password` fields from its own, the `extras` by name; what it leaves empty is left out."""
        extra = conn.extra_dejson or {}
        values: dict[str, Any] = {}
        if conn.host:
            values["base_url"] = base_url(conn.host, conn.port, conn.schema)
        if login and conn.login:
            values[login] = conn.login
        if conn.password:
            values[password] = conn.password
        for name in extras:
            value = extra_field(extra, self.conn_type, name)
            if value is not None:
                values[name] = value
        return values

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form layout; Airflow 3.2+ reads the same dict from provider_info (one source). Types
        of other providers (postgres, redis, google_cloud_platform) keep their provider's form."""
        from include.airflow_provider.get_provider_info import get_provider_info

        for entry in get_provider_info()["connection-types"]:
            if entry["connection-type"] == cls.conn_type:
                return dict(entry["ui-field-behaviour"])
        return {}


class ClientHook(ProviderHook, Generic[C]):
    """A hook that keeps the client it makes (`new_client`): `get_conn()` gives the same one until
    `close()`."""

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id, **kwargs)
        self._client: C | None = None

    def new_client(self) -> C:
        raise NotImplementedError

    def get_conn(self) -> C:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


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


def mask_secrets(*secrets: SecretStr) -> None:
    """Registered with the task log masker even if Airflow did not recognise the fields' names."""
    for secret in secrets:
        if secret.get_secret_value():
            mask_secret(secret.get_secret_value())
