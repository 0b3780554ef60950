"""One place that reads configuration: the environment and `.env`.

The gateway, the CLI and the tests read these settings directly; Airflow tasks get the
same values through connections (see `include.airflow_provider.hooks`), which build these objects.
Field names map 1:1 to upper-case environment variables (pydantic-settings).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_COMMON = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


class AdvowareSettings(BaseSettings):
    model_config = SettingsConfigDict(**_COMMON, env_prefix="ADVOWARE_")

    base_url: str = "http://127.0.0.1:8101"
    # Security gateway that issues tokens; empty means "same host as the API".
    auth_url: str = ""
    # Optional discovery through the vendor's configurator (connectorUrl / relayUrl).
    configurator_url: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    app_id: str = ""
    api_key: SecretStr = SecretStr("")
    kanzlei: str = ""
    database: str = ""
    role: int = 2
    product: int = 64
    write_protection: bool = False
    timeout_s: float = 30.0
    max_retries: int = 4

    @property
    def token_url_base(self) -> str:
        return (self.auth_url or self.base_url).rstrip("/")


class EspoCrmSettings(BaseSettings):
    model_config = SettingsConfigDict(**_COMMON, env_prefix="ESPOCRM_")

    base_url: str = "http://127.0.0.1:8103"
    api_key: SecretStr = SecretStr("")
    entity: str = "CBeteiligte"
    # One or more, comma-separated, each "secret" or "webhookId=secret".
    webhook_secret: SecretStr = SecretStr("")
    webhook_allow_unsigned: bool = False
    webhook_max_body_bytes: int = 1024 * 1024
    timeout_s: float = 30.0

    def webhook_secrets(self) -> list[tuple[str | None, str]]:
        """Parse ESPOCRM_WEBHOOK_SECRET into (webhook_id or None, secret) pairs."""
        out: list[tuple[str | None, str]] = []
        for part in self.webhook_secret.get_secret_value().split(","):
            part = part.strip()
            if not part:
                continue
            if "=" in part:
                wid, secret = part.split("=", 1)
                out.append((wid.strip() or None, secret.strip()))
            else:
                out.append((None, part))
        return out


class GoogleSettings(BaseSettings):
    model_config = SettingsConfigDict(**_COMMON, env_prefix="GOOGLE_")

    calendar_service_account_path: str = ""
    delegation: bool = False
    # Empty = Google's real endpoints; the sandbox sets all three.
    api_endpoint: str = ""
    batch_uri: str = ""
    token_uri: str = ""
    acl_role: Literal["reader", "writer", "owner", "freeBusyReader", "writerWithoutPrivateAccess"] = "writer"
    requests_per_window: int = 600
    # Google's second quota: every request of the project (all quota users); 0 = not limited here.
    project_requests_per_window: int = Field(default=10000, ge=0)
    window_s: float = 60.0
    batch_size: int = Field(default=50, le=50, ge=1)
    batch_parallel: int = Field(default=4, ge=1)  # batches in flight per calendar (the quota split)
    max_retries: int = 8
    # Google push (watch channels, include/calendar_push/): on when GATEWAY_PUBLIC_URL is set, unless a
    # firm whose gateway Google cannot reach (HTTPS with a valid certificate) switches it off here.
    push_enabled: bool = True


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(**_COMMON, env_prefix="POSTGRES_")

    host: str = "127.0.0.1"
    port: int = 5432
    db: str = "sync_hub"
    user: str = "postgres"
    password: SecretStr = SecretStr("")

    def dsn(self, db: str | None = None) -> str:
        pw = self.password.get_secret_value()
        auth = f"{self.user}:{pw}@" if pw else f"{self.user}@"
        return f"postgresql://{auth}{self.host}:{self.port}/{db or self.db}"


class AirflowApiSettings(BaseSettings):
    model_config = SettingsConfigDict(**_COMMON, env_prefix="AIRFLOW_API_")

    url: str = "http://127.0.0.1:8080"
    username: str = "admin"
    password: SecretStr = SecretStr("")
    timeout_s: float = 10.0


class AirflowUiSettings(BaseSettings):
    """Named logins of the Airflow UI under the FAB auth manager (compose): created by airflow-init."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="AIRFLOW_UI_")

    # comma-separated `username:role:initial password[:e-mail]`, role operator | viewer | admin; a user
    # that exists keeps the password they changed in the UI
    users: SecretStr = SecretStr("")

    def accounts(self) -> list[tuple[str, str, str, str]]:
        """(username, role, password, e-mail); ValueError names the bad entry by position, never its text."""
        out = []
        for n, entry in enumerate(p.strip() for p in self.users.get_secret_value().split(",")):
            if not entry:
                continue
            parts = entry.split(":", 3)
            if len(parts) < 3 or not parts[0] or not parts[2] or parts[1] not in ("operator", "viewer", "admin"):
                raise ValueError(f"AIRFLOW_UI_USERS entry {n + 1}: want username:operator|viewer|admin:password")
            email = parts[3] if len(parts) == 4 and parts[3] else f"{parts[0]}@kanzlei-sync.invalid"
            out.append((parts[0], parts[1], parts[2], email))
        return out


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(**_COMMON, env_prefix="GATEWAY_")

    host: str = "127.0.0.1"
    port: int = 8000
    api_token: SecretStr = SecretStr("")
    read_token: SecretStr = SecretStr("")
    # Top-level Advoware resources the proxy forwards (and everything below them).
    proxy_allow: str = "Termine,Mitarbeiter,Beteiligte"
    proxy_max_body_bytes: int = 1024 * 1024
    airflow_ui_url: str = ""
    # The gateway's URL as EspoCRM reaches it: where the webhooks must point (register-webhooks, check).
    public_url: str = ""
    # The edge (webhook_gateway/server.py): how long a request's head and body may take, how large
    # the head may be, how many connections are served (docs/interfaces.md, "Gateway limits").
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    keep_alive_s: float = 5.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_connections: int = 256

    @field_validator("proxy_allow")
    @classmethod
    def _strip(cls, v: str) -> str:
        return ",".join(p.strip() for p in v.split(",") if p.strip())

    def allowed_paths(self) -> list[str]:
        return [p for p in self.proxy_allow.split(",") if p]


class SyncSettings(BaseSettings):
    model_config = SettingsConfigDict(**_COMMON, env_prefix="SYNC_")

    window_days_back: int = 30
    window_days_ahead: int = 365
    conflict_policy: Literal["advoware_wins", "google_wins", "last_change_wins"] = "advoware_wins"
    include_shared_pool: bool = False
    # Privacy by default (professional secrecy, GDPR art. 25): Google gets "Termin" and the times only.
    # false is a deliberate choice of the firm (README, "What goes to Google").
    anonymize: bool = True
    delete_threshold_ratio: float = 0.20
    delete_threshold_min: int = 10
    party_max_attempts: int = 5
    party_hard_delete: bool = False
    party_batch_size: int = 50
    party_lease_s: int = 300
    # A calendar item failing this often (task tries over runs) is parked as a dead letter.
    calendar_max_attempts: int = 12
    # Employees planned at once by the calendar run's first task (threads; each waits on the APIs).
    plan_threads: int = Field(default=8, ge=1, le=64)
    # An employee's planning running longer is handed to its unit's phase task (with its retries).
    plan_employee_timeout_s: float = Field(default=120.0, gt=0)
    # Mapped groups of a calendar run at most: up to this many employees with work get one each,
    # more are grouped into this many units. 8 = twice the parallelism of 4 (docs/benchmarks.md);
    # raise it with the executor's parallelism. Far below core.max_map_length.
    max_units: int = Field(default=8, ge=1, le=256)
    # Google watch channels: the lifetime asked for (Google grants at most about a week) and how long
    # before its expiry the planning task replaces a channel (runs every 15 min: many chances).
    channel_ttl_s: int = Field(default=604800, ge=60)
    channel_renew_margin_s: float = Field(default=86400.0, ge=0)
    # The per-employee sync lease (hub employee_sync_leases): held while a task works on the employee,
    # renewed every third of it; a killed worker blocks the employee at most this long.
    lease_ttl_s: float = Field(default=120.0, ge=5)


class PushSettings(BaseSettings):
    """Changes that start a targeted run of one employee: Google's notifications and proxy writes."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="PUSH_")

    # A burst for one employee within this many seconds of its first mark becomes one targeted run.
    debounce_s: float = Field(default=1.5, ge=0, le=300)
    # How long a targeted run waits for the employee's lease (another run syncing them) before its
    # task fails and Airflow retries it.
    lease_wait_s: float = Field(default=60.0, ge=0)
    # false: notifications are checked and counted, but start no run (the schedule alone syncs).
    runs_enabled: bool = True


class AlertSettings(BaseSettings):
    """Who gets an e-mail when something needs a person (include/alerts.py), and when."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="ALERT_")

    # comma-separated addresses; empty = alerts are logged (WARNING) but not mailed
    email_to: str = ""
    party_dead_letters: int = Field(default=10, ge=1)  # open party dead letters that make an incident
    party_queue_age_s: int = Field(default=1800, ge=60)  # the oldest queued party waiting this long

    def recipients(self) -> list[str]:
        return [a.strip() for a in self.email_to.split(",") if a.strip()]


class SmtpSettings(BaseSettings):
    """The mail server of the alerts; Airflow gets it as the connection `smtp_default`."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="SMTP_")

    host: str = ""
    port: int = 587
    user: str = ""
    password: SecretStr = SecretStr("")
    from_email: str = "kanzlei-sync@localhost"
    starttls: bool = True  # STARTTLS on a plain connection (port 587)
    ssl: bool = False  # TLS from the first byte (port 465)
    timeout_s: int = 30


class Settings(BaseSettings):
    model_config = _COMMON

    sandbox_mode: bool = False
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"

    advoware: AdvowareSettings = Field(default_factory=AdvowareSettings)
    espocrm: EspoCrmSettings = Field(default_factory=EspoCrmSettings)
    google: GoogleSettings = Field(default_factory=GoogleSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    airflow_api: AirflowApiSettings = Field(default_factory=AirflowApiSettings)
    airflow_ui: AirflowUiSettings = Field(default_factory=AirflowUiSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    alert: AlertSettings = Field(default_factory=AlertSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
