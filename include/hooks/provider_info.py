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
        "connection-types": [],
    }
