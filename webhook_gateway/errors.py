"""One error format for every refusal of the gateway: `{"error", "message", "status", "request_id"}`
(`error` a stable code, `message` for people; some add `limit`, `limit_items`, `detail`, `verdicts`).

`refusal()` builds the exception a route raises; the handlers here (app.py registers them) render every
HTTPException (the routes' and Starlette's own 404/405 for unknown routes), validation errors and
unexpected errors in it. The webhook fast path (ingest.py) and the edge (server.py) write the same
fields themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("webhook_gateway")
MAX_VALIDATION_PROBLEMS = 20
# the code of a refusal raised with a plain message (FastAPI's and Starlette's own)
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "body_too_large",
    422: "invalid_request",
    502: "bad_gateway",
    503: "unavailable",
}


def refusal(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> StarletteHTTPException:
    from fastapi import HTTPException

    return HTTPException(status, detail={"error": code, "message": message, **extra}, headers=headers)


def body_of(request: Request, status: int, detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        body = dict(detail)
        body.setdefault("message", str(body.get("error", "")))
    else:
        body = {"error": _CODES.get(status, f"http_{status}"), "message": str(detail)}
    body.setdefault("error", _CODES.get(status, f"http_{status}"))
    body["status"] = status
    body.setdefault("request_id", getattr(request.state, "request_id", None))
    return body


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(body_of(request, exc.status_code, exc.detail), status_code=exc.status_code, headers=exc.headers)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # where and why, never the input: FastAPI's default echoes the whole body (5 MB for a 5 MB body)
    problems = [
        {
            "loc": [str(part)[:64] for part in err.get("loc", ())][:8],
            "msg": str(err.get("msg", ""))[:200],
            "type": str(err.get("type", ""))[:64],
        }
        for err in exc.errors()[:MAX_VALIDATION_PROBLEMS]
    ]
    return JSONResponse(
        {
            "error": "invalid_request",
            "message": "the request does not match the API",
            "status": 422,
            "request_id": getattr(request.state, "request_id", None),
            "detail": problems,
        },
        status_code=422,
    )


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette logs the traceback after this answer; the client learns nothing of it
    return JSONResponse(
        {
            "error": "internal_error",
            "message": "the gateway failed; the log has the cause",
            "status": 500,
            "request_id": getattr(request.state, "request_id", None),
        },
        status_code=500,
    )
