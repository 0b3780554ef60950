"""`Mitarbeiter`: the firm's employees."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sandbox.advoware.state import SandboxDep, empty
from sandbox.advoware.wire import API

router = APIRouter()


@router.get(f"{API}/Mitarbeiter")
async def mitarbeiter(sandbox: SandboxDep, request: Request) -> Response:
    refused, fault = await sandbox.guard(request, "Mitarbeiter.list")
    if refused:
        return refused
    return JSONResponse([] if empty(fault) else [dict(m) for m in sandbox.store.mitarbeiter])
