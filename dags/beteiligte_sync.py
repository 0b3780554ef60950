"""
### beteiligte_sync: EspoCRM parties → Advoware, driven by the webhook queue

EspoCRM sends a signed webhook for every created, changed or deleted party (`CBeteiligte`). The
gateway stores the party ids in Redis (coalesced: one unit of work per id, however many deliveries)
and triggers this DAG; a sweep every 5 minutes (env `BETEILIGTE_SYNC_SCHEDULE`) catches whatever a
missed trigger left behind.

1. **work_queued**: one look at the queue; an id ready (or a crashed worker's claim expired) → done.
   Otherwise it waits in the triggerer, not on a worker, woken at once by the gateway's enqueue; no
   work within a minute → skipped, the run ends quietly. A sweep that finds nothing costs one short
   task process; waiting costs none.
2. **drain_queue**: claims a batch with a lease, and for each party fetches the *current* record
   from EspoCRM (404 = deleted), creates or updates the Advoware Beteiligter and its communications
   (e-mail, phone), writes the `betNr`, sync status and time back to EspoCRM and records the link in
   the hub (`party_links`); then acknowledges, and claims again until the queue is empty.
   A failing party is retried with backoff and after `SYNC_PARTY_MAX_ATTEMPTS` lands in the dead
   letters (`GET /webhooks/dead-letters`, replayable). Deleted parties stay in Advoware (unlinked)
   unless `SYNC_PARTY_HARD_DELETE=true`. With `ADVOWARE_WRITE_PROTECTION=true` nothing is written to
   Advoware; the parties held back go round again once it is off.

**Alerts** (e-mail to `ALERT_EMAIL_TO` through the connection `smtp_default`, one per incident):
the oldest queued party waiting `ALERT_PARTY_QUEUE_AGE_S` (checked by work_queued), open party
dead letters reaching `ALERT_PARTY_DEAD_LETTERS` (checked after each drain).

Connections: `espocrm_default`, `advoware_default`, `redis_default`, `sync_hub_default`.
All logic lives in `include/parties/` and `include/queue/` (the wait: `include/airflow_provider/sensors/`
and `triggers/`; the drain: `include/airflow_provider/tasks/parties.py`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from include.airflow_provider.dag_defaults import default_args
from include.airflow_provider.sensors.party_queue import PartyWorkSensor
from include.dag_ids import BETEILIGTE_SYNC_DAG

SCHEDULE = os.environ.get("BETEILIGTE_SYNC_SCHEDULE", "*/5 * * * *")


@dag(
    dag_id=BETEILIGTE_SYNC_DAG,
    schedule=SCHEDULE,  # the sweep; the gateway triggers runs in between
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["espocrm", "advoware", "beteiligte"],
    default_args=default_args(retry_delay_s=15, max_retry_delay=timedelta(minutes=5)),
)
def beteiligte_sync() -> None:
    # An idle sweep ends after a minute; new work does not wait for it: the gateway triggers a run.
    work_queued = PartyWorkSensor(task_id="work_queued", idle_timeout_s=60)

    @task(execution_timeout=timedelta(minutes=20))
    def drain_queue() -> dict[str, Any]:
        from include.airflow_provider.tasks.parties import drain_queue as drain

        return drain()

    work_queued >> drain_queue()


beteiligte_sync()
