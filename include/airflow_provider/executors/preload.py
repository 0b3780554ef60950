"""Import the DAGs' task modules once in the long-lived process that forks the task processes.

Every task process is a fork: of the LocalExecutor's worker (itself forked from the scheduler when
the executor starts) or of a Celery pool process (forked from the Celery worker). What that parent
has imported, each task gets for free; what it has not, each task imports again. Our task modules
(clients, engine, hub: ~365 modules, ~0.5 CPU-s) are imported in the parent once:

- LocalExecutor: `PreloadingLocalExecutor` (AIRFLOW__CORE__EXECUTOR=
  include.airflow_provider.executors.preload.PreloadingLocalExecutor) imports them in `start()`, before it forks its
  workers; otherwise it is Airflow's LocalExecutor.
- CeleryExecutor: include/airflow_provider/executors/celery_config.py puts the same modules into Celery's `imports`,
  which a Celery worker imports before it forks its pool (the Celery provider does the same for
  Airflow's own modules).

Nothing here connects anywhere: imports only, no threads, no sockets (safe before a fork).
"""

from __future__ import annotations

import importlib
import logging
import time

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

# What the task bodies of dags/*.py import (tests/unit/test_preload.py checks the list against the DAGs).
TASK_MODULES = (
    "include.calendar_sync.executor",
    "include.calendar_sync.phases",
    "include.calendar_sync.planning",
    "include.calendar_sync.prepare",
    "include.calendar_sync.targeted",
    "include.airflow_provider.tasks.calendar_sync",
    "include.airflow_provider.tasks.parties",
    "include.advoware.client",
    "include.airflow_provider.hooks.advoware",
    "include.airflow_provider.hooks.espocrm",
    "include.airflow_provider.hooks.google_calendar",
    "include.airflow_provider.hooks.hub",
    "include.airflow_provider.hooks.redis",
    "include.airflow_provider.notifiers.alerts",
    "include.parties.drain",
    "include.parties.runlog",
    "include.hub.parties",
    "include.parties.sync",
    "include.queue.party_queue",
    "include.settings",
)


def preload(modules: tuple[str, ...] = TASK_MODULES) -> float:
    """Import `modules`; returns the seconds it took. A module that fails to import is logged and
    left to the task (which then fails with the real error in its own log)."""
    started = time.monotonic()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the task will show the error where an administrator looks for it
            log.exception("preloading %s failed; tasks import it themselves", name)
    took = time.monotonic() - started
    log.info("preloaded %d task modules in %.2fs", len(modules), took)
    return took


class PreloadingLocalExecutor(LocalExecutor):
    """Airflow's LocalExecutor; its workers (and so every task process) start with the task modules."""

    def start(self) -> None:
        preload()
        super().start()
