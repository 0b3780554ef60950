"""The ids of the Airflow connections the project reads, each defined once (as include/dag_ids.py does
for DAG ids). No Airflow import: include/airflow_env.py writes the AIRFLOW_CONN_* variables from them."""

from __future__ import annotations

ADVOWARE = "advoware_default"
ESPOCRM = "espocrm_default"
GOOGLE_CALENDAR = "google_calendar_default"
SYNC_HUB = "sync_hub_default"
REDIS = "redis_default"
SMTP = "smtp_default"  # the SMTP provider's own default id: its SmtpHook reads it


def env_name(conn_id: str) -> str:
    """The environment variable Airflow reads a connection from: AIRFLOW_CONN_<ID>."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"
