"""Celery configuration of the Airflow workers: Airflow's default plus the task modules preloaded.

AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=include.airflow_provider.executors.celery_config.CELERY_CONFIG. Celery imports
the modules named in `imports` in the worker's main process before it forks its pool, so every task
process starts with them (see include/airflow_provider/executors/preload.py). Everything else is the provider's default
configuration (broker, result backend, acks_late, visibility timeout from [celery] settings).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

from include.airflow_provider.executors.preload import TASK_MODULES

CELERY_CONFIG: dict[str, Any] = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), *TASK_MODULES),
}
