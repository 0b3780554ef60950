"""The gateway: EspoCRM webhooks in, Advoware proxy, calendar-sync trigger, health, metrics."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from include.settings import Settings, get_settings

log = logging.getLogger("webhook_gateway")
access_log = logging.getLogger("webhook_gateway.access")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = {}
        try:
            yield
        finally:
            for closer in reversed(app.state.closers):
                await closer()

    app = FastAPI(title="Kanzlei sync gateway", lifespan=lifespan)
    app.state.settings = settings
    app.state.closers = []

    @app.middleware("http")
    async def request_id(request: Request, call_next):  # type: ignore[no-untyped-def]
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        # accept only a sane id from outside: it ends up in logs and the audit
        if len(rid) > 128 or not rid.replace("-", "").replace("_", "").replace(".", "").isalnum():
            rid = uuid.uuid4().hex
        request.state.request_id = rid
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-ID"] = rid
        # path only: query strings may carry ids of clients; never headers (tokens)
        access_log.info("%s %s %s %.1fms rid=%s", request.method, request.url.path, response.status_code,
                        (time.perf_counter() - started) * 1000, rid)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}
        body.setdefault("status", exc.status_code)
        body.setdefault("request_id", getattr(request.state, "request_id", None))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    # Routers of the gateway's parts (each module owns its routes).
    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    pass
