"""The sandbox's own admin extras: token lifetime, clock skew and compression (`/_sandbox/config`), revoking
every token, and a dump of the store."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException

from sandbox.advoware.state import SandboxDep
from sandbox.compression import MODES

router = APIRouter()


@router.post("/_sandbox/config")
async def config(sandbox: SandboxDep, body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
    if body.get("token_ttl_s") is not None:
        sandbox.gateway.token_ttl_s = float(body["token_ttl_s"])
    if body.get("clock_skew_s") is not None:
        sandbox.gateway.clock_skew_s = float(body["clock_skew_s"])
    if body.get("compress") is not None:
        if body["compress"] not in MODES:
            raise HTTPException(400, f"compress must be one of {', '.join(MODES)}")
        sandbox.compression.mode = body["compress"]
    return {
        "token_ttl_s": sandbox.gateway.token_ttl_s,
        "clock_skew_s": sandbox.gateway.clock_skew_s,
        "compress": sandbox.compression.mode,
    }


@router.post("/_sandbox/revoke_tokens")
async def revoke_tokens(
    sandbox: SandboxDep,
) -> dict[str, Any]:
    return {"revoked": sandbox.gateway.revoke_all()}


@router.get("/_sandbox/state")
async def state(
    sandbox: SandboxDep,
) -> dict[str, Any]:
    return sandbox.store.dump()
