"""`GET|POST|PUT|DELETE /api/advoware/{path}` → Advoware `api/v1/advonet/{path}`, status and body unchanged.

Order of checks: token (401/403) → path shape (400) → allow-list (403) → scope for writes (403)
→ body size (413) and JSON (400) → write protection (403, in the client, before anything leaves)
→ Advoware (its answer; 504 on timeout, 502 when unreachable). Every write that passed the token
check is recorded in the hub's `write_audit`, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from urllib.parse import unquote

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response

from include.advoware.async_client import AsyncAdvowareClient, RawResponse
from include.advoware.errors import (
    AdvowareAuthError,
    AdvowareConnectionError,
    AdvowareError,
    AdvowareTimeout,
    WriteProtectedError,
)
from include.hub import audit
from include.settings import Settings
from webhook_gateway.auth import token_scope

log = logging.getLogger("webhook_gateway.proxy")
router = APIRouter()

PREFIX = "/api/advoware/"
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_PASS_HEADERS = ("content-type", "retry-after")


def check_path(raw_rest: str) -> str:
    """Validate the part after /api/advoware/ as sent (still percent-encoded); return it decoded.

    Advoware resource paths are plain words and numbers separated by single slashes, so anything
    else (dots, colons, @, backslashes, encoded slashes, double encoding) is refused outright.
    """
    lowered = raw_rest.lower()
    if "%2f" in lowered or "%5c" in lowered:
        raise _bad("encoded slash in path")
    path = unquote(raw_rest)
    if "%" in path:
        raise _bad("double-encoded path")
    if "\\" in path:
        raise _bad("backslash in path")
    if "://" in path or path.startswith("/"):
        raise _bad("absolute URL in path")
    path = path[:-1] if path.endswith("/") else path
    if not path:
        raise _bad("no Advoware resource named")
    for seg in path.split("/"):
        if seg in (".", ".."):
            raise _bad("path traversal")
        if not seg:
            raise _bad("empty path segment")
        if ":" in seg or "@" in seg or "." in seg:
            raise _bad("host or absolute URL in path")
        if not _SEGMENT.fullmatch(seg):
            raise _bad("invalid character in path")
    return path


def allowed(path: str, allow: list[str]) -> bool:
    p = path.lower()
    return any(p == a.lower().strip("/") or p.startswith(a.lower().strip("/") + "/") for a in allow)


def _bad(reason: str) -> HTTPException:
    return _error(400, "bad_path", reason)


def get_client(app: FastAPI) -> AsyncAdvowareClient:
    """One pooled client per gateway process, created on first use, closed at shutdown."""
    client: AsyncAdvowareClient | None = getattr(app.state, "advoware_proxy_client", None)
    if client is None:
        settings: Settings = app.state.settings
        client = AsyncAdvowareClient(settings.advoware, redis_url=settings.redis_url)
        app.state.advoware_proxy_client = client
        app.state.closers.append(client.aclose)
    return client


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail={"error": "body_too_large", "message": f"body over {limit} bytes"})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(
                413, detail={"error": "body_too_large", "message": f"body over {limit} bytes"}
            )
    return bytes(body)


def _error(status: int, error: str, message: str) -> HTTPException:
    return HTTPException(status, detail={"error": error, "message": message})


@router.api_route("/api/advoware/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
async def advoware_proxy(path: str, request: Request) -> Response:
    scope = token_scope(request)  # 401 / 403 before anything else
    settings: Settings = request.app.state.settings
    method = request.method
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    rest = raw[len(PREFIX) :] if raw.startswith(PREFIX) else path
    target = rest[:200]  # audit target until the path is validated
    try:
        target = check_path(rest)
        resp = await _forward(request, settings, scope, method, target)
    except HTTPException as exc:
        if method in WRITE_METHODS:
            detail = exc.detail.get("error") if isinstance(exc.detail, dict) else str(exc.detail)
            await _audit(request, settings, scope, target, exc.status_code, detail)
        raise
    if method in WRITE_METHODS:
        await _audit(request, settings, scope, target, resp.status_code, None)
    headers = {k: v for k in _PASS_HEADERS if (v := resp.headers.get(k))}
    return Response(content=resp.content, status_code=resp.status_code, headers=headers)


async def _forward(
    request: Request, settings: Settings, scope: str, method: str, path: str
) -> RawResponse:
    if not allowed(path, settings.gateway.allowed_paths()):
        raise _error(403, "path_not_allowed", f"'{path.split('/')[0]}' is not on the proxy allow-list")
    if method in WRITE_METHODS and scope != "write":
        raise _error(403, "read_only_token", "this token is read-only; a write needs the read-write token")
    body = await _read_body(request, settings.gateway.proxy_max_body_bytes)
    if body.strip():
        try:
            json.loads(body)
        except ValueError:
            raise _error(400, "bad_body", "body is not JSON") from None
    content = body if (body.strip() and method != "GET") else None
    try:
        return await get_client(request.app).request(
            method, path, request.query_params.multi_items(), content=content, check=False, retry=False
        )
    except WriteProtectedError:
        raise _error(403, "write_protected", "Advoware write protection is on; nothing was sent") from None
    except AdvowareTimeout:
        raise _error(
            504, "advoware_timeout", f"Advoware did not answer within {settings.advoware.timeout_s}s"
        ) from None
    except AdvowareConnectionError as exc:
        raise _error(502, "advoware_unreachable", str(exc)) from None
    except AdvowareAuthError as exc:
        raise _error(502, "advoware_auth", str(exc)) from None
    except AdvowareError as exc:
        raise _error(502, "advoware_error", str(exc)) from None


async def _audit(
    request: Request, settings: Settings, scope: str, target: str, status: int, detail: str | None
) -> None:
    entry = audit.AuditEntry(
        actor="proxy",
        method=request.method,
        target=target,
        status=status,
        token_scope=scope,
        request_id=getattr(request.state, "request_id", None),
        detail=detail,
    )
    try:
        await asyncio.to_thread(audit.record, settings.postgres.dsn(), entry)
    except Exception as exc:  # the write already happened (or was refused): answer anyway, but loudly
        log.error("proxy audit row not written: %s rid=%s", type(exc).__name__, entry.request_id)


def include(app: FastAPI) -> None:
    app.include_router(router)


__all__ = ["router", "include", "check_path", "allowed", "get_client"]
