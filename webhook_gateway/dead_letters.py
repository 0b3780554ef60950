"""The dead letters: `GET /webhooks/dead-letters` lists them (draining the Redis outbox into the hub
first), `POST /webhooks/dead-letters/{id}/replay` queues a party id again or releases a parked calendar
item (and starts a calendar run for its employee)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import psycopg
import redis
from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query

from include.airflow_api import AirflowApi, trigger_calendar_retry
from include.dead_letter_replay import replay
from include.hub import dead_letters
from include.hub.db import Hub, connect
from webhook_gateway.auth import require_write
from webhook_gateway.deps import WebhookResourcesDep
from webhook_gateway.errors import refusal
from webhook_gateway.openapi import errors

log = logging.getLogger("webhook_gateway.webhooks")
router = APIRouter()

MAX_DB_INT = 2**63 - 1  # PostgreSQL bigint: ids and offsets beyond it are a 422, not a failed query
# the hub or Redis being away (a 503); anything else is a bug and stays a 500
_STORE_DOWN = (redis.RedisError, psycopg.OperationalError, OSError)


def _trigger_calendar_quietly(api: AirflowApi, employee: str, dead_letter_id: int) -> None:
    try:
        run = trigger_calendar_retry(api, employee, dead_letter_id)
        log.info("calendar run %s for the replayed item of dead letter %s", run.dag_run_id, dead_letter_id)
    except Exception as exc:  # Airflow down: the next scheduled calendar run retries the item
        log.warning(
            "calendar run for dead letter %s not triggered (%s); the next scheduled run retries it",
            dead_letter_id,
            type(exc).__name__,
        )


@router.get(
    "/webhooks/dead-letters",
    dependencies=[Depends(require_write)],
    tags=["dead letters"],
    responses=errors(401, 403, 422, 503),
)
def list_dead_letters(
    res: WebhookResourcesDep,
    include_replayed: bool = False,
    source: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> dict[str, Any]:
    try:
        res.drain_rejected()
        with connect(res.settings.postgres.dsn()) as conn:
            rows = dead_letters.list_(
                conn, include_replayed=include_replayed, source=source, limit=limit, offset=offset
            )
    except _STORE_DOWN as exc:  # Redis or hub down
        log.error("dead letters unavailable: %s", type(exc).__name__)
        raise refusal(503, "store_unavailable", "dead-letter store unavailable") from None
    return {"dead_letters": [dead_letters.to_json(r) for r in rows], "count": len(rows)}


@router.post(
    "/webhooks/dead-letters/{dead_letter_id}/replay",
    dependencies=[Depends(require_write)],
    tags=["dead letters"],
    responses=errors(401, 403, 404, 409, 422, 503),
)
def replay_dead_letter(
    dead_letter_id: Annotated[int, Path(ge=1, le=MAX_DB_INT)], res: WebhookResourcesDep, background: BackgroundTasks
) -> dict[str, Any]:
    try:
        with Hub(res.settings.postgres.dsn()) as hub:
            row = replay(hub, dead_letter_id, lambda ids: res.sync_queue.enqueue(ids, "replay"))
    except LookupError as exc:
        raise refusal(404, "not_found", str(exc)) from None
    except ValueError as exc:
        raise refusal(409, "already_replayed", str(exc)) from None
    except _STORE_DOWN as exc:
        log.error("replay of dead letter %s failed: %s", dead_letter_id, type(exc).__name__)
        raise refusal(503, "store_unavailable", "queue or dead-letter store unavailable") from None
    if row["source"] == dead_letters.CALENDAR_SOURCE:  # a parked calendar item: a calendar run retries it
        log.info("dead letter %s replayed: calendar item %s released", dead_letter_id, row["entity_id"])
        employee = (row.get("payload") or {}).get("employee")
        if employee and res.airflow is not None:
            background.add_task(_trigger_calendar_quietly, res.airflow, employee, dead_letter_id)
        return {"replayed": row}
    log.info("dead letter %s replayed: id %s queued again", dead_letter_id, row["entity_id"])
    background.add_task(res.trigger_once)
    return {"replayed": row}
