"""The environment of a dev stack of a test's own (`python -m devstack up`): free ports for every
server, its own run directory, Airflow home, hub database and Redis database, a fresh Airflow login."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sandbox.runner import free_port

SERVERS = ("advoware", "google", "espocrm", "gateway", "airflow", "worker_logs", "trigger_logs")


def stack_env(tmp_path: Path, hub_db: str, redis_url: str, **extra: str) -> dict[str, str]:
    """`extra` on top (schedules, timeouts, tokens); the port of a server is in its URL variable."""
    ports = {name: free_port() for name in SERVERS}
    google = f"http://127.0.0.1:{ports['google']}"
    env = {
        **os.environ,
        "DEVSTACK_RUN_DIR": str(tmp_path / "run"),
        "DEVSTACK_AIRFLOW_HOME": str(tmp_path / "af"),
        "SANDBOX_MODE": "true",
        "ADVOWARE_BASE_URL": f"http://127.0.0.1:{ports['advoware']}",
        "ESPOCRM_BASE_URL": f"http://127.0.0.1:{ports['espocrm']}",
        "GOOGLE_API_ENDPOINT": f"{google}/calendar/v3/",
        "GOOGLE_BATCH_URI": f"{google}/batch/calendar/v3",
        "GOOGLE_TOKEN_URI": f"{google}/token",
        "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH": str(tmp_path / "run" / "sa.json"),
        "GATEWAY_PORT": str(ports["gateway"]),
        "AIRFLOW_API_URL": f"http://127.0.0.1:{ports['airflow']}",
        "AIRFLOW_API_USERNAME": "admin",
        "AIRFLOW_API_PASSWORD": f"e2e-{uuid.uuid4().hex[:12]}",
        "POSTGRES_DB": hub_db,
        "REDIS_URL": redis_url,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_logs"]),
        **extra,
    }
    env.pop("AIRFLOW_HOME", None)  # the stack's own, not the test session's
    return env
