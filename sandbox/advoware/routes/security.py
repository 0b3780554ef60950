"""Discovery (the configurator's `connectorUrl`) and the security gateway's token endpoint (HMAC flow)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sandbox.advoware.gateway import TokenError
from sandbox.advoware.state import SandboxDep
from sandbox.advoware.wire import error, fault_response

log = logging.getLogger("sandbox.advoware.app")  # the logger the sandbox always logged to
router = APIRouter()


@router.get("/AdvonetConfigurator/api/Url")
async def configurator(sandbox: SandboxDep, request: Request, Kanzlei: str = "") -> Response:  # noqa: N803 - wire name
    fault = await sandbox.control.enter("Configurator")
    if fault is not None and fault.kind == "status":
        return fault_response(fault)
    if Kanzlei != sandbox.gateway.credentials.kanzlei:
        return error(404, "unknown_kanzlei", "unknown Kanzlei")
    base = str(request.base_url).rstrip("/")
    return JSONResponse({"connectorUrl": base, "relayUrl": "", "securityGateway": base})


@router.post("/api/v1/Token")
async def token(sandbox: SandboxDep, request: Request) -> Response:
    try:  # read the body first: after a stalled (timeout) fault the client may be gone
        body: Any = await request.json()
    except ValueError:
        body = None
    fault = await sandbox.control.enter("Token")
    if fault is not None and fault.kind == "status":
        return fault_response(fault)
    if body is None:
        return error(400, "invalid_request", "body is not JSON")
    try:
        answer = sandbox.gateway.issue(body)
    except TokenError as exc:
        log.info("advoware sandbox: token refused (%s)", exc.error)
        return JSONResponse(exc.body(), status_code=exc.status)
    return JSONResponse(answer)
