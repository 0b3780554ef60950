"""The status view as a FastAPI app: `/` the HTML page, `/api` the same data as JSON. Read-only.

The caller decides where the state lives (`sources`, called per request so a changed connection is
picked up) and who may look (`dependencies`, e.g. the Airflow JWT check of the plugin). Handlers
are plain `def`: FastAPI runs them in its thread pool, so the blocking psycopg/Redis calls never
stall the server's event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Query
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, JSONResponse

from include.status.page import render
from include.status.queries import Sources, collect

# The page has no scripts and no external assets; it may only be framed by its own origin (the UI).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
}


def create_app(sources: Callable[[], Sources], *, dependencies: Sequence[Depends] = (),
               title: str = "Sync status") -> FastAPI:
    app = FastAPI(title=title, dependencies=list(dependencies), docs_url=None, redoc_url=None,
                  openapi_url=None)

    def _status(limit: int) -> dict[str, Any]:
        src = sources()
        try:
            return collect(src, audit_limit=limit)
        finally:
            if src.redis_client is not None:
                src.redis_client.close()

    @app.get("/", response_class=HTMLResponse)
    def page(limit: int = Query(20, ge=1, le=200, description="audited writes to show")) -> HTMLResponse:
        return HTMLResponse(render(_status(limit)), headers=SECURITY_HEADERS)

    @app.get("/api")
    def api(limit: int = Query(20, ge=1, le=200)) -> JSONResponse:
        return JSONResponse(_status(limit), headers=SECURITY_HEADERS)

    return app
