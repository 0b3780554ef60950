"""Advoware's error answers (`{"error", "Message"}`) and how its parameters and bodies are read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from sandbox.common import FaultSpec

API = "/api/v1/advonet"


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "Message": message, **extra}, status_code=status)


def fault_response(fault: FaultSpec) -> JSONResponse:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    message = "Service temporarily unavailable" if fault.status == 503 else "Injected error"
    body = {"error": fault.reason or "injected_fault", "Message": message, "status": fault.status}
    return JSONResponse(body, status_code=fault.status, headers=headers)


def int_param(value: str | None, name: str) -> int:
    try:
        if value is None:
            raise TypeError(name)
        return int(value)
    except (TypeError, ValueError):
        raise HTTPException(400, f"{name} must be an integer") from None


def date_param(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        raise HTTPException(400, f"{name} must be YYYY-MM-DD") from None


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "body must be a JSON object")
    return body
