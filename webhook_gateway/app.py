"""The gateway: EspoCRM webhooks in, Advoware proxy, calendar-sync trigger, health, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from include.settings import Settings, get_settings
from webhook_gateway import docs, errors, openapi
from webhook_gateway.request_id import RequestIdMiddleware
from webhook_gateway.webhooks import WebhookIngestMiddleware

log = logging.getLogger("webhook_gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = {}
        from webhook_gateway.targeted_runs import resume

        await resume(app)  # marks a stopped gateway left pending become runs now
        try:
            yield
        finally:
            for closer in reversed(app.state.closers):
                await closer()

    # the API pages come from a pinned package (webhook_gateway/docs.py), not from a CDN
    app = FastAPI(title="Kanzlei sync gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.closers = []

    # add_middleware puts the last one outermost: the request id wraps the webhook fast path
    app.add_middleware(WebhookIngestMiddleware)
    app.add_middleware(RequestIdMiddleware)

    errors.install(app)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    # Routers of the gateway's parts (each module owns its routes).
    _include_routers(app)
    from webhook_gateway.webhooks import MAX_ITEMS

    openapi.install(app, max_items=MAX_ITEMS, max_body=settings.espocrm.webhook_max_body_bytes)
    docs.install(app)
    return app


def _include_routers(app: FastAPI) -> None:
    from webhook_gateway.calendar import router as calendar_sync
    from webhook_gateway.google_push import router as google_push
    from webhook_gateway.health import router as deep_health
    from webhook_gateway.proxy import router as advoware_proxy
    from webhook_gateway.webhooks import install as install_webhooks

    app.include_router(advoware_proxy)
    app.include_router(calendar_sync)
    app.include_router(google_push)
    app.include_router(deep_health)
    install_webhooks(app)
