"""`POST /advoware/calendar/sync`: start a run of the `advoware_calendar_sync` DAG (read-write token).

Body `{"full_content": bool, "employees": ["AB", ...]}` (both optional) becomes the run's conf.
The run id is derived from the caller's `Idempotency-Key` (else its `X-Request-ID`), so a retried
call finds the run its first attempt started instead of starting a second one (Airflow answers 409
for a known run id). Without either header every call starts a run.
Answer: 202 `{"dag_id", "dag_run_id", "created": true, "state", "url"}` for a new run, 200 with
`created: false` for a repeated call; 503 when Airflow cannot be reached, within TRIGGER_DEADLINE_S
(the retries wait with asyncio.sleep: a caller waiting on a down Airflow holds no thread).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from include.airflow_api import AirflowApiError
from include.dag_ids import CALENDAR_SYNC_DAG
from include.settings import Settings
from webhook_gateway.auth import require_write
from webhook_gateway.body_limit import limited_body_route
from webhook_gateway.deps import CALENDAR_TRIGGER_DEADLINE_S, CalendarAirflowDep, SettingsDep
from webhook_gateway.errors import refusal
from webhook_gateway.openapi import errors

log = logging.getLogger("webhook_gateway.calendar")
# 500 Kürzel of 20 characters are about 12 KiB of JSON: nothing larger is read (413), let alone parsed
MAX_TRIGGER_BODY = 16 * 1024
router = APIRouter(route_class=limited_body_route(MAX_TRIGGER_BODY))
TRIGGER_DEADLINE_S = CALENDAR_TRIGGER_DEADLINE_S  # the Airflow client's (deps.py)

RUN_ID_PREFIX = "gateway__calendar__"
Kuerzel = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9ÄÖÜäöüß_-]{1,20}$")]


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_content: bool = False
    employees: list[Kuerzel] = Field(default_factory=list, max_length=500)


def run_id_for(key: str | None) -> str:
    """A stable run id per idempotency key (hashed: any key text becomes a safe id)."""
    if not key:
        return RUN_ID_PREFIX + uuid.uuid4().hex
    return RUN_ID_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def run_url(settings: Settings, dag_run_id: str) -> str:
    base = (settings.gateway.airflow_ui_url or settings.airflow_api.url).rstrip("/")
    return f"{base}/dags/{CALENDAR_SYNC_DAG}/runs/{quote(dag_run_id, safe='')}"


class TriggerAnswer(BaseModel):
    dag_id: str
    dag_run_id: str
    created: bool
    state: str | None
    url: str


@router.post(
    "/advoware/calendar/sync",
    dependencies=[Depends(require_write)],
    status_code=202,
    tags=["calendar"],
    response_model=None,
    responses={
        202: {"model": TriggerAnswer, "description": "A run was started"},
        200: {
            "model": TriggerAnswer,
            "description": "A repeated call (same Idempotency-Key or X-Request-ID): the run it started",
        },
        **errors(400, 401, 403, 413, 422, 502, 503),
    },
)
async def trigger_calendar_sync(
    api: CalendarAirflowDep,
    settings: SettingsDep,
    body: SyncRequest | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    x_request_id: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    body = body or SyncRequest()
    dag_run_id = run_id_for(idempotency_key or x_request_id)
    conf = {"full_content": body.full_content, "employees": body.employees}
    try:
        result = await api.trigger(CALENDAR_SYNC_DAG, conf, dag_run_id, "triggered through the gateway")
    except (httpx.HTTPError, AirflowApiError, TimeoutError) as exc:
        status = getattr(exc, "status", None)
        log.warning("calendar sync trigger failed: %s %s", type(exc).__name__, status or "")
        if status == 404:
            raise refusal(502, "dag_unknown", f"Airflow does not know the DAG {CALENDAR_SYNC_DAG}") from None
        raise refusal(503, "airflow_unreachable", "Airflow is not reachable; try again") from None
    state = result.state
    if not result.created:
        try:
            state = (await api.get_run(CALENDAR_SYNC_DAG, dag_run_id)).get("state")
        except (httpx.HTTPError, AirflowApiError, TimeoutError):
            state = None
    log.info(
        "calendar sync run %s %s (employees: %d)",
        dag_run_id,
        "created" if result.created else "exists",
        len(body.employees),
    )
    payload = {
        "dag_id": CALENDAR_SYNC_DAG,
        "dag_run_id": dag_run_id,
        "created": result.created,
        "state": state,
        "url": run_url(settings, dag_run_id),
    }
    return JSONResponse(payload, status_code=202 if result.created else 200)
