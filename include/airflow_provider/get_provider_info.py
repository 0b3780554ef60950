"""Provider metadata: Airflow registers connection types only through the
`apache_airflow_provider` entry point declared in pyproject.toml."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "kanzlei-sync",
        "name": "Kanzlei Sync",
        "description": "Advoware, EspoCRM and Google Calendar connections of the firm's integration.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "hook-class-name": "include.airflow_provider.hooks.advoware.AdvowareHook",
                "hook-name": "Advoware",
                "connection-type": "advoware",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "API base URL", "login": "User", "password": "Password"},
                    "placeholders": {"host": "https://<connectorUrl of the firm>", "login": "advoware user"},
                },
                "conn-fields": {
                    "auth_url": {
                        "label": "Security gateway URL",
                        "description": "Where POST /api/v1/Token goes; empty = the API base URL.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "configurator_url": {
                        "label": "Configurator URL (discovery)",
                        "description": "Optional: ask AdvonetConfigurator for connectorUrl/relayUrl.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "kanzlei": {"label": "Firm (Kanzlei)", "schema": {"type": ["string", "null"]}},
                    "database": {"label": "Database", "schema": {"type": ["string", "null"]}},
                    "app_id": {"label": "App ID", "schema": {"type": ["string", "null"]}},
                    "api_key": {
                        "label": "API key (base64)",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "role": {"label": "Role", "schema": {"type": ["integer", "null"], "default": 2}},
                },
            },
            {
                "hook-class-name": "include.airflow_provider.hooks.espocrm.EspoCrmHook",
                "hook-name": "EspoCRM",
                "connection-type": "espocrm",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "Base URL", "password": "API key"},
                    "placeholders": {"host": "https://crm.example.com", "password": "API user's key"},
                },
                "conn-fields": {
                    "entity": {
                        "label": "Party entity",
                        "description": "Custom entity that holds the parties.",
                        "schema": {"type": ["string", "null"], "default": "CBeteiligte"},
                    },
                    "timeout_s": {"label": "Timeout (s)", "schema": {"type": ["number", "null"]}},
                },
            },
        ],
    }
