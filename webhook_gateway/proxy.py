"""`GET|POST|PUT|DELETE /api/advoware/{path}` → Advoware `api/v1/advonet/{path}`, status and body unchanged.

Order of checks: token (401/403) → path and query length (414) → path shape (400) → allow-list (403)
→ method override (400) → scope for writes (403) → body size (413) and JSON (400) → write protection
(403, in the client, before anything leaves) → Advoware (its answer; 504 on timeout, 502 when
unreachable). Every write that passed the token check is recorded in the hub's `write_audit` exactly
once, whatever its outcome (a client that went away mid-upload: 499 `client_disconnected`).

What goes upstream: the method, the checked path, the query parameters as sent, and for writes the
JSON body; no client header (the proxy sends its own Authorization and Content-Type). A method
override (`?_method=`, `X-HTTP-Method-Override` and kin) is refused, not forwarded: the method
Advoware sees is always the method of the request.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.requests import ClientDisconnect

from include.advoware.async_client import AsyncAdvowareClient, RawResponse
from include.advoware.errors import (
    AdvowareAuthError,
    AdvowareConnectionError,
    AdvowareError,
    AdvowareTimeout,
    WriteProtectedError,
)
from include.hub import audit
from include.hub.db import connect
from include.hub.links import employees_of_frnr
from include.settings import Settings
from webhook_gateway.auth import token_scope
from webhook_gateway.body_limit import too_large
from webhook_gateway.deps import AdvowareClientDep, SettingsDep, TargetedRunsDep
from webhook_gateway.json_body import BadJson, decode
from webhook_gateway.log_safe import escape
from webhook_gateway.openapi import errors
from webhook_gateway.targeted_runs import TargetedRuns, employees_of_termin

log = logging.getLogger("webhook_gateway.proxy")
router = APIRouter()

PREFIX = "/api/advoware/"
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_PASS_HEADERS = ("content-type", "retry-after")
# Advoware resource paths are short ("Beteiligte/12/Kommunikationen/3"); longer ones are refused, not sent
MAX_PATH_CHARS = 512
MAX_QUERY_BYTES = 2048
_OVERRIDE_HEADERS = (b"x-http-method-override", b"x-http-method", b"x-method-override")
CLIENT_GONE = 499  # nginx's "client closed request": the audit status of an upload the client abandoned
# The audit writes (blocking psycopg) get threads of their own: nothing else in the process can
# hold them (triggers sleeping in the shared default pool once made a proxy write wait 11 s).
_AUDIT_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="write-audit")


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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def _error(status: int, error: str, message: str) -> HTTPException:
    return HTTPException(status, detail={"error": error, "message": message})


_UPSTREAM_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Advoware's answer (JSON), passed on unchanged",
        "content": {"application/json": {"schema": {}}},
    },
    "default": {
        "description": "Advoware's own answer with its status (404, 409, 503 with Retry-After, ...), "
        "passed on unchanged",
        "content": {"application/json": {"schema": {}}},
    },
}
_PROXY_DOC: dict[str, Any] = {
    "tags": ["advoware proxy"],
    "responses": {**_UPSTREAM_ANSWER, **errors(400, 401, 403, 413, 414, 422, 502, 504)},
    "description": (
        "Forwarded to Advoware `api/v1/advonet/{path}` with the method, the query parameters as sent and, "
        "for writes, the JSON body; no client header. The path is words, numbers, '-' and '_' between "
        f"single slashes, at most {MAX_PATH_CHARS} characters; the query string at most {MAX_QUERY_BYTES} "
        "bytes; a method override (`_method`, X-HTTP-Method-Override) is a 400. Writes (POST, PUT, DELETE) "
        "need the read-write token and are audited."
    ),
}
_JSON_BODY = {"requestBody": {"required": False, "content": {"application/json": {"schema": {}}}}}


async def advoware_proxy(
    path: str, request: Request, client: AdvowareClientDep, runs: TargetedRunsDep, settings: SettingsDep
) -> Response:
    scope = token_scope(request)  # 401 / 403 before anything else
    method = request.method
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    rest = raw[len(PREFIX) :] if raw.startswith(PREFIX) else path
    target = rest[:200]  # audit target until the path is validated
    status: int = 500
    detail: str | None = "internal_error"  # unless something below says otherwise
    try:
        check_length(rest, request.scope.get("query_string", b""))
        target = check_path(rest)
        resp = await _forward(request, settings, client, scope, method, target)
        status, detail = resp.status_code, None
        if method in WRITE_METHODS and 200 <= status < 300 and target.split("/")[0].lower() == "termine":
            _start_targeted_run(request, resp, runs, settings)
    except HTTPException as exc:
        status = exc.status_code
        detail = exc.detail.get("error") if isinstance(exc.detail, dict) else str(exc.detail)
        raise
    except ClientDisconnect:  # gone mid-upload: nothing was sent upstream, and nobody reads an answer
        # the server's body deadline ends a request the same way, and leaves its reason in the state
        status, detail = request.scope.get("state", {}).get("edge_refusal") or (CLIENT_GONE, "client_disconnected")
        log.info(
            "proxy %s %s: body not received (%s) rid=%s",
            method,
            escape(target),
            detail,
            getattr(request.state, "request_id", None),
        )
        return Response(status_code=status)
    finally:  # exactly one audit row per write attempt, whatever happened
        if method in WRITE_METHODS:
            await _audit(request, settings, scope, target, status, detail)
    headers = {k: v for k in _PASS_HEADERS if (v := resp.headers.get(k))}
    return Response(content=resp.content, status_code=resp.status_code, headers=headers)


for _method in ("GET", "POST", "PUT", "DELETE"):  # one route per method: one operation id each
    router.add_api_route(
        "/api/advoware/{path:path}",
        advoware_proxy,
        methods=[_method],
        operation_id=f"advoware_proxy_{_method.lower()}",
        openapi_extra=_JSON_BODY if _method in ("POST", "PUT") else None,
        **_PROXY_DOC,
    )


def check_length(raw_rest: str, query: bytes) -> None:
    if len(raw_rest) > MAX_PATH_CHARS:
        raise _error(414, "uri_too_long", f"path longer than {MAX_PATH_CHARS} characters")
    if len(query) > MAX_QUERY_BYTES:
        raise _error(414, "uri_too_long", f"query string longer than {MAX_QUERY_BYTES} bytes")


def _method_override(request: Request) -> bool:
    if any(name in _OVERRIDE_HEADERS for name, _ in request.scope["headers"]):
        return True
    return any(key.lower() == "_method" for key in request.query_params)


async def _forward(
    request: Request, settings: Settings, client: AsyncAdvowareClient, scope: str, method: str, path: str
) -> RawResponse:
    if not allowed(path, settings.gateway.allowed_paths()):
        head = path.split("/")[0]
        shown = head if len(head) <= 40 else head[:40] + "..."  # a 60 KB segment is not echoed back
        raise _error(403, "path_not_allowed", f"'{shown}' is not on the proxy allow-list")
    if _method_override(request):
        raise _error(
            400,
            "method_override",
            "method overrides (_method, X-HTTP-Method-Override) are not supported; "
            "send the request with the method itself",
        )
    if method in WRITE_METHODS and scope != "write":
        raise _error(403, "read_only_token", "this token is read-only; a write needs the read-write token")
    body = await _read_body(request, settings.gateway.proxy_max_body_bytes)
    request.state.proxy_body = body  # a Termine write names its employee in it (_start_targeted_run)
    if body.strip():
        try:
            decode(body)
        except BadJson as exc:
            raise _error(400, "bad_body", str(exc)) from None
    content = body if (body.strip() and method != "GET") else None
    try:
        return await client.request(
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
        await asyncio.get_running_loop().run_in_executor(_AUDIT_POOL, audit.record, settings.postgres.dsn(), entry)
    except Exception as exc:  # the write already happened (or was refused): answer anyway, but loudly
        log.error("proxy audit row not written: %s rid=%s", type(exc).__name__, entry.request_id)


# -- a write to appointments starts the employee's targeted run (webhook_gateway/targeted_runs.py) -------
_BACKGROUND: set[asyncio.Task[None]] = set()


def _start_targeted_run(request: Request, resp: RawResponse, runs: TargetedRuns, settings: Settings) -> None:
    """After the answer is known, off the request path: which employees the written appointment
    belongs to (the body's and Advoware's answer's `kuerzel`/`anwalt`, and, for an update or delete
    by `frnr`, whose calendar holds it per the hub's links: an update may move it to another
    employee), and mark each changed."""
    if not runs.enabled:
        return
    sent, answered = _json_or_none(getattr(request.state, "proxy_body", b"")), _json_or_none(resp.content)
    named = employees_of_termin(sent, answered, *(answered if isinstance(answered, list) else []))
    frnr = request.query_params.get("frnr") or ""
    dsn = settings.postgres.dsn()
    rid = getattr(request.state, "request_id", None)

    async def mark() -> None:
        employees = set(named)
        try:
            if frnr.lstrip("-").isdigit():
                employees |= await asyncio.get_running_loop().run_in_executor(
                    _AUDIT_POOL, _linked_employees, dsn, int(frnr)
                )
            for employee in sorted(employees):
                await runs.mark(employee, "proxy")
            log.info("proxy write to Termine: targeted run due for %s rid=%s", ", ".join(sorted(employees)) or "-", rid)
        except Exception as exc:  # Redis or the hub away: the scheduled run syncs the change
            log.warning("proxy write to Termine: no targeted run (%s) rid=%s", type(exc).__name__, rid)

    task = asyncio.get_running_loop().create_task(mark())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def _json_or_none(raw: bytes) -> Any:
    if not raw or not raw.strip():
        return None
    try:
        return decode(raw)
    except BadJson:
        return None


def _linked_employees(dsn: str, frnr: int) -> set[str]:
    with connect(dsn) as conn:
        return employees_of_frnr(conn, frnr)


__all__ = ["router", "check_path", "allowed"]
