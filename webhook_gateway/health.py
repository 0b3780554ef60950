"""`GET /healthz/deep`: the result of `kanzlei-sync check` (include/checks) over HTTP, for monitoring.

Token-protected: either token (GATEWAY_READ_TOKEN is enough: it only reads), because the answer names
hosts, accounts and ids. 200 when no check failed, else 503 in the gateway's error format with the
same verdicts. Each call does one harmless read per service (a few seconds): poll it every few minutes,
not every few seconds; `/healthz` is the cheap liveness probe.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from include.checks.run import run_all
from webhook_gateway.auth import token_scope
from webhook_gateway.deps import SettingsDep
from webhook_gateway.openapi import errors

router = APIRouter()
Service = Literal["advoware", "google", "espocrm", "hub", "redis", "airflow", "smtp"]  # include.checks.run.SERVICES


class VerdictBody(BaseModel):
    service: str
    status: str
    checked: str
    fix: str


class DeepHealth(BaseModel):
    ok: bool
    verdicts: list[VerdictBody]


@router.get(
    "/healthz/deep",
    tags=["operations"],
    dependencies=[Depends(token_scope)],
    response_model=DeepHealth,
    responses=errors(401, 403, 503),
)
def deep_health(
    request: Request,
    settings: SettingsDep,
    service: Annotated[list[Service] | None, Query(description="only these services (repeatable); default all")] = None,
) -> Any:
    # plain def: the checks block, FastAPI runs it in a thread
    verdicts = run_all(settings, only=list(service) if service else None)
    body: dict[str, Any] = {"ok": all(v.ok for v in verdicts), "verdicts": [v.as_dict() for v in verdicts]}
    if body["ok"]:
        return body
    failed = [v for v in verdicts if not v.ok]
    return JSONResponse(
        {
            "error": "check_failed",
            "status": 503,
            "message": f"{len(failed)} checks failed: {', '.join(sorted({v.service for v in failed}))}",
            "request_id": getattr(request.state, "request_id", None),
            **body,
        },
        status_code=503,
    )
