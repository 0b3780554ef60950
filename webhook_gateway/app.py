"""The gateway: EspoCRM webhooks in, Advoware proxy, calendar-sync trigger, health, metrics.

Resources open in `lifespan` (webhook_gateway/deps.py), routes take them as typed dependencies; every
part is a router, mounted here with `include_router`; the middlewares and the exception handlers are
registered here too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.settings import Settings, get_settings
from webhook_gateway import (
    calendar,
    dead_letters,
    docs,
    errors,
    google_push,
    health,
    ingest,
    openapi,
    operations,
    proxy,
)
from webhook_gateway.deps import Resources
from webhook_gateway.request_id import RequestIdMiddleware

log = logging.getLogger("webhook_gateway")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    resources = app.state.resources = Resources.open(app.state.settings)
    await resources.targeted_runs.resume()  # marks a stopped gateway left pending become runs now
    try:
        yield
    finally:
        await resources.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # the API pages come from a pinned package (webhook_gateway/docs.py), not from a CDN
    app = FastAPI(
        title="Kanzlei sync gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=docs.OAUTH2_REDIRECT,
        exception_handlers={
            StarletteHTTPException: errors.http_error,  # FastAPI's HTTPException is a subclass
            RequestValidationError: errors.invalid_request,
            Exception: errors.internal_error,
        },
    )
    app.state.settings = settings

    # add_middleware puts the last one outermost: the request id wraps the webhook fast path
    app.add_middleware(ingest.WebhookIngestMiddleware)
    app.add_middleware(RequestIdMiddleware)
    ingest.warn_if_unsigned_allowed(settings)

    app.include_router(operations.router)
    app.include_router(proxy.router)
    app.include_router(calendar.router)
    app.include_router(google_push.router)
    app.include_router(health.router)
    app.include_router(dead_letters.router)
    app.mount(docs.ASSETS, docs.assets(), name="docs-assets")
    app.include_router(docs.router)
    app.openapi = openapi.complete_document(  # type: ignore[method-assign]
        app, max_body=settings.espocrm.webhook_max_body_bytes
    )
    return app
