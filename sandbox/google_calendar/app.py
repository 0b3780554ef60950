"""FastAPI wiring of the Google Calendar v3 sandbox: /token, /calendar/v3/..., /batch/calendar/v3, admin.

Admin routes besides sandbox.common's (/healthz, /_sandbox/reset, /_sandbox/seed, /_sandbox/faults,
/_sandbox/stats):

    POST /_sandbox/config {"quota_requests": 60, "quota_window_s": 6, "quota_status": 403|429,
                           "project_quota_requests": 10000, "token_lifetime_s": 3600,
                           "enforce_access": true, "default_time_zone": "UTC",
                           "series_timing_model": "anchor"|"keep"|"reset"}
    GET  /_sandbox/config
    GET  /_sandbox/quota                        requests refused per quota (user, project) and the
                                                most requests the project's window held
    POST /_sandbox/invalidate_sync_tokens       every sync token answers 410 fullSyncRequired
    POST /_sandbox/expire_tokens                every access token answers 401 (clients refresh)
    GET  /_sandbox/state                        calendars with ACL and events (cancelled included)
    GET  /_sandbox/push                         watch channels (active, stopped, expired), delivery
                                                counts (delivered, retried, failed, lost, duplicated,
                                                batched) and the last deliveries (push.py)
    POST /_sandbox/push/expire {"id"?}          let one channel (or all) expire now
    GET  /_sandbox/mails                        the mails Google would have sent (guests.py): count,
                                                by kind, and each one (kind, principal, calendar, event, to)

Seed body: {"calendars": [{"id"?, "summary", "owner", "timeZone"?, "acl"?: [AclRule]}],
            "events": {"<calendarId>": [event bodies; "id", "status", "created", "updated" allowed]}}
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from sandbox.common import SandboxControl, make_app

from . import guests
from .api import JSON_HEADERS, ApiRequest, ApiResponse, CalendarApi, Config
from .auth import JWT_BEARER, OAUTH_DESCRIPTIONS, OAuthError, TokenAuthority
from .batch import boundary_of, parse_batch, render_batch
from .errors import GoogleError, from_fault
from .quota import SlidingWindowQuota
from .series import TIMING_MODELS
from .store import CalendarStore

API_PREFIX = "/calendar/v3/"
MAX_BATCH_PARTS = 1000


def _key_files() -> list[str]:
    """Key files whose public halves the sandbox may verify JWTs against (read lazily)."""
    path = os.environ.get("GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH")
    if not path:
        try:
            from include.settings import GoogleSettings

            path = GoogleSettings().calendar_service_account_path
        except Exception:  # unreadable settings only mean: no file to verify against
            path = ""
    return [path] if path else []


def create_app(*, quota_requests: int = 600, quota_window_s: float = 60.0) -> FastAPI:
    defaults = Config(quota_requests=quota_requests, quota_window_s=quota_window_s)
    config = Config(**defaults.as_dict())
    control = SandboxControl("google")
    store = CalendarStore(config.default_time_zone)
    store.timing_model = config.series_timing_model
    quota = SlidingWindowQuota(config.quota_requests, config.quota_window_s, config.project_quota_requests)
    tokens = TokenAuthority(_key_files, lambda: config.token_lifetime_s)
    api = CalendarApi(store, control, tokens, quota, config)

    def reset_state() -> None:
        nonlocal store
        for name, value in defaults.as_dict().items():
            setattr(config, name, value)
        store = CalendarStore(config.default_time_zone)
        store.timing_model = config.series_timing_model
        api.store = store
        api.mails = guests.MailLog()
        api.push.reset()
        quota.configure(config.quota_requests, config.quota_window_s, config.project_quota_requests)

    def seed_state(body: dict[str, Any]) -> dict[str, Any]:
        try:
            result = store.seed(body)
        except GoogleError as exc:
            raise HTTPException(exc.code, exc.body()) from exc
        for cid in body.get("events") or {}:
            api.push.changed(cid)
        return result

    app = make_app("Google Calendar sandbox", control, reset_state=reset_state, seed_state=seed_state)

    # -- OAuth2 token endpoint ------------------------------------------------------------------
    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = dict(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace")))
        try:
            if form.get("grant_type") != JWT_BEARER:
                raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type')}")
            if not form.get("assertion"):
                raise OAuthError(400, "invalid_request", "Missing required parameter: assertion")
            claims = tokens.decode_assertion(form["assertion"])
        except OAuthError as exc:
            control.count("token", write=False, principal=None)
            return JSONResponse(exc.body(), status_code=exc.status)
        principal = tokens.principal_of(claims)
        fault = await control.enter("token", principal=principal.name)
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return JSONResponse(
                {
                    "error": fault.reason or "internal_failure",
                    "error_description": OAUTH_DESCRIPTIONS.get(fault.reason or "", "Injected fault."),
                },
                status_code=fault.status,
                headers=headers,
            )
        return JSONResponse(tokens.issue(principal), headers={"Cache-Control": "no-store"})

    # -- the API ---------------------------------------------------------------------------------
    @app.api_route(API_PREFIX + "{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def calendar_api(path: str, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        answer = await api.handle(
            ApiRequest(
                request.method,
                raw_path.split("?", 1)[0][len(API_PREFIX) :],
                request.url.query,
                {k.lower(): v for k, v in request.headers.items()},
                await request.body(),
            )
        )
        return Response(answer.encoded(), status_code=answer.status, headers=answer.headers)

    @app.post("/batch/calendar/v3")
    async def batch(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            outer = tokens.authenticate(headers.get("authorization")).name
        except GoogleError:
            outer = None  # each part is authenticated on its own
        fault = await control.enter("batch", principal=outer)
        if fault is not None and fault.kind == "status":
            return _error(from_fault(fault.status, fault.reason, fault.retry_after))
        boundary = boundary_of(headers.get("content-type", ""))
        if boundary is None:
            return _error(GoogleError(400, "badRequest", "Batch requests must be multipart/mixed with a boundary."))
        try:
            parts = parse_batch(await request.body(), boundary)
        except ValueError:
            return _error(GoogleError(400, "badRequest", "Failed to parse batch request."))
        if len(parts) > MAX_BATCH_PARTS:
            return _error(GoogleError(400, "badRequest", f"A batch may hold at most {MAX_BATCH_PARTS} calls."))
        # Outer headers apply to every part except Content-*; part headers override.
        shared = {
            k: v for k, v in headers.items() if not k.startswith("content-") and k not in ("host", "content-length")
        }
        answers = []
        for part in parts:
            path, _, query = part.target.partition("?")
            if path.startswith(API_PREFIX):
                answer = await api.handle(
                    ApiRequest(part.method, path[len(API_PREFIX) :], query, {**shared, **part.headers}, part.body)
                )
            else:
                answer = ApiResponse.error(GoogleError(404, "notFound"))
            answers.append((part.content_id, answer.status, answer.headers, answer.encoded()))
        body, content_type = render_batch(answers)
        return Response(body, status_code=200, media_type=None, headers={"Content-Type": content_type})

    # -- admin -------------------------------------------------------------------------------------
    @app.get("/_sandbox/config")
    async def get_config() -> dict[str, Any]:
        return config.as_dict()

    @app.post("/_sandbox/config")
    async def set_config(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        unknown = set(body) - set(config.as_dict())
        if unknown:
            raise HTTPException(400, f"unknown config keys: {sorted(unknown)}")
        if "quota_status" in body and body["quota_status"] not in (403, 429):
            raise HTTPException(400, "quota_status must be 403 or 429")
        if "series_timing_model" in body and body["series_timing_model"] not in TIMING_MODELS:
            raise HTTPException(400, f"series_timing_model must be one of {list(TIMING_MODELS)}")
        for name, value in body.items():
            setattr(config, name, type(getattr(config, name))(value))
        quota.configure(config.quota_requests, config.quota_window_s, config.project_quota_requests)
        store.enforce_access = config.enforce_access
        store.default_time_zone = config.default_time_zone
        store.timing_model = config.series_timing_model
        if "push_seed" in body:
            api.push.reseed()
        return config.as_dict()

    @app.get("/_sandbox/quota")
    async def get_quota() -> dict[str, Any]:
        return quota.report()

    @app.post("/_sandbox/invalidate_sync_tokens")
    async def invalidate_sync_tokens() -> dict[str, Any]:
        store.invalidate_sync_tokens()
        return {"status": "ok", "sync_generation": store.generation}

    @app.post("/_sandbox/expire_tokens")
    async def expire_tokens() -> dict[str, Any]:
        tokens.expire_all()
        return {"status": "ok"}

    @app.get("/_sandbox/state")
    async def state() -> dict[str, Any]:
        return store.state()

    @app.get("/_sandbox/push")
    async def push_state() -> dict[str, Any]:
        return api.push.state()

    @app.post("/_sandbox/push/expire")
    async def push_expire(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        return {"expired": api.push.expire(body.get("id"))}

    @app.get("/_sandbox/mails")
    async def mails() -> dict[str, Any]:
        return api.mails.state()

    return app


def _error(exc: GoogleError) -> Response:
    return Response(ApiResponse.error(exc).encoded(), status_code=exc.code, headers={**JSON_HEADERS, **exc.headers})
