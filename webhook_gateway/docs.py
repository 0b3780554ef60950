"""`/docs` (Swagger UI) and `/redoc` served from the pinned package fastapi-offline, not a CDN: the
gateway's API documentation works on a network without internet access.

FastAPI's own pages load Swagger UI and ReDoc from jsdelivr; they are switched off (`docs_url=None`,
`redoc_url=None`) and replaced by the same pages whose scripts, styles and favicon come from
`/docs-assets/`, a static mount of the package's files. The paths honour the ASGI root path (a
gateway behind a proxy). ReDoc's bundle draws the Redocly logo from its CDN in the menu's footer; the
page's Content-Security-Policy allows images from the gateway only, so the browser never asks the CDN
and ReDoc hides the image it could not load.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
REDOC_CSP = "img-src 'self' data:; font-src 'self' data:; connect-src 'self'"


OAUTH2_REDIRECT = "/docs/oauth2-redirect"  # FastAPI's default; app.py hands it to FastAPI too
router = APIRouter(include_in_schema=False)


def assets() -> StaticFiles:
    """The package's scripts, styles and favicon (app.py mounts them at ASSETS)."""
    return StaticFiles(directory=str(files("fastapi_offline") / "static"))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
    )


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = REDOC_CSP
    return page
