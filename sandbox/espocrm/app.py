"""HTTP face of the EspoCRM sandbox: `/api/v1/*` as EspoCRM answers it, plus the admin routes.

Admin routes (besides sandbox.common's /healthz, /_sandbox/reset|seed|faults|stats):
  POST   /_sandbox/user/{Entity}         a CRM user creates a record (always produces webhook items)
  PUT    /_sandbox/user/{Entity}/{id}    a CRM user edits it
  DELETE /_sandbox/user/{Entity}/{id}    a CRM user deletes it
  POST   /_sandbox/webhooks/flush        one sender pass; answers the per-batch outcomes
  GET    /_sandbox/webhooks/log          every delivery attempt (webhook id, status, attempt, items)
  POST   /_sandbox/config                {"auto_flush_s": 2, "retry_delay_s": 600, "batch_size": 50,
                                          "max_attempts": 4, "timeout_s": 10}
  GET    /_sandbox/state                 records and webhooks (with pending item counts)
Seed body: {"seed": 1, "parties": 50} (generated firm's parties as CBeteiligte) or
           {"records": {"CBeteiligte": [{...}, ...]}}; seeding replaces the records, makes no webhook items.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from fastapi import APIRouter, Body, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import FaultSpec, SandboxControl, make_app
from sandbox.espocrm.store import (
    MAX_SIZE_LIMIT,
    QueryError,
    RecordStore,
    parse_bracket_params,
    parse_int,
    where_clauses,
)
from sandbox.espocrm.webhooks import EVENT_RE, SenderConfig, WebhookHub

SANDBOX_API_KEY = "sandbox-espocrm-key"
API_USER_ID = "5f0a1b2c3d4e5f601"  # the API user the key belongs to (owner of its webhooks)
CRM_USER_ID = "5f0a1b2c3d4e5f602"  # the human CRM user of the admin /_sandbox/user routes
DEFAULT_ENTITY = "CBeteiligte"


def _error(status: int, reason: str = "", body: Any = None, retry_after: int | None = None) -> Response:
    """EspoCRM answers errors with the reason in `X-Status-Reason` and mostly an empty body."""
    headers = {"X-Status-Reason": reason} if reason else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def _fault_response(fault: FaultSpec | None) -> Response | None:
    if fault is None or fault.kind != "status":
        return None
    return _error(fault.status, fault.reason or "Sandbox fault", retry_after=fault.retry_after)


class EspoSandbox:
    def __init__(self) -> None:
        self.control = SandboxControl("espocrm")
        self.store = RecordStore()
        config = SenderConfig(
            auto_flush_s=float(os.environ.get("SANDBOX_ESPOCRM_AUTO_FLUSH_S", "0") or 0),
            retry_delay_s=float(os.environ.get("SANDBOX_ESPOCRM_RETRY_DELAY_S", "600") or 600),
        )
        self.hub = WebhookHub(config, on_send=lambda: self.control.count("webhook.send", write=False, principal=None))

    def api_keys(self) -> set[str]:
        keys = {SANDBOX_API_KEY}
        extra = os.environ.get("SANDBOX_ESPOCRM_API_KEY", "").strip()
        if extra:
            keys.add(extra)
        return keys

    def authorized(self, request: Request) -> bool:
        return request.headers.get("x-api-key", "") in self.api_keys()

    async def enter(self, request: Request, endpoint: str, *, write: bool = False) -> Response | None:
        """Faults first (an outage answers before auth), then the API key."""
        # writes are counted by `wrote` once they succeeded (not when refused: 401, 404, 409)
        fault = await self.control.enter(endpoint, write=write, principal="api", count_write=False)
        response = _fault_response(fault)
        if response is not None:
            return response
        if not self.authorized(request):
            return _error(401, "Unauthorized")
        if fault is not None and fault.kind == "empty_list":
            request.state.empty_list = True
        return None

    def wrote(self, endpoint: str, result: Any) -> Any:
        if not isinstance(result, Response):
            self.control.count_write(endpoint, "api")
        return result

    # -- admin -----------------------------------------------------------------------------
    def reset(self) -> None:
        self.store.clear()
        self.hub.clear()

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        self.store.clear()
        rng = random.Random(int(body.get("seed", 0) or 0))
        records: dict[str, list[dict[str, Any]]] = dict(body.get("records") or {})
        if body.get("parties"):
            from sandbox.firm import generate_firm

            # Same arguments as the other sandboxes' seeds give the same firm (the rng is shared).
            kwargs = {k: int(body[k]) for k in ("employees", "appointments_per_employee") if k in body}
            start = date.fromisoformat(body["start"]) if body.get("start") else None
            firm = generate_firm(int(body.get("seed", 1)), parties=int(body["parties"]), start=start, **kwargs)
            records.setdefault(DEFAULT_ENTITY, []).extend(firm.parties)
        counts = {}
        for entity, rows in records.items():
            for row in rows:
                self.store.load(entity, row, rng)
            counts[entity] = len(self.store.table(entity))
        return {"status": "seeded", "service": "espocrm", "records": counts}

    def state(self) -> dict[str, Any]:
        return {
            "records": {e: list(t.values()) for e, t in self.store.entities.items()},
            "webhooks": [{**h.as_api(), "pending": h.pending()} for h in self.hub.webhooks.values()],
            "config": vars(self.hub.config).copy(),
        }

    # -- record operations shared by the API and the user routes ---------------------------
    def create(self, entity: str, data: dict[str, Any], *, own: bool) -> dict[str, Any]:
        record = self.store.insert(entity, data, user_id=API_USER_ID if own else CRM_USER_ID)
        self.hub.emit_create(entity, dict(record), own=own)
        return record

    def update(
        self, entity: str, record_id: str, data: dict[str, Any], *, own: bool, version: str | None
    ) -> Response | dict[str, Any]:
        current = self.store.get(entity, record_id)
        if current is None:
            return _error(404, "Not Found")
        if version not in (None, "") and str(current.get("versionNumber")) != version.strip():
            # ConflictSilent 'modified' with the current values, as EspoCRM's Record service does
            return _error(409, "modified", {"reason": "modified", "data": dict(current)})
        record, changed = self.store.update(entity, record_id, data, user_id=API_USER_ID if own else CRM_USER_ID)
        self.hub.emit_update(entity, record_id, changed, own=own)
        return dict(record)

    def delete(self, entity: str, record_id: str, *, own: bool) -> Response | bool:
        if self.store.delete(entity, record_id) is None:
            return _error(404, "Not Found")
        self.hub.emit_delete(entity, record_id, own=own)
        return True


async def _json_object(request: Request) -> dict[str, Any] | Response:
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError:
        return _error(400, "Bad JSON")
    if not isinstance(data, dict):
        return _error(400, "Body must be a JSON object")
    return data


def api_router(sb: EspoSandbox) -> APIRouter:
    r = APIRouter(prefix="/api/v1")

    # Webhook routes come first: "Webhook" is an entity name to the generic routes below.
    @r.post("/Webhook")
    async def webhook_create(request: Request) -> Any:
        if (early := await sb.enter(request, "Webhook.create", write=True)) is not None:
            return early
        data = await _json_object(request)
        if isinstance(data, Response):
            return data
        event, url = data.get("event"), data.get("url")
        if not isinstance(event, str) or not EVENT_RE.match(event):
            return _error(400, "Bad event")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _error(400, "Bad url")
        hook = sb.hub.register(event, url, bool(data.get("skipOwn", False)), API_USER_ID)
        return sb.wrote("Webhook.create", hook.as_api())

    @r.get("/Webhook")
    async def webhook_list(request: Request) -> Any:
        if (early := await sb.enter(request, "Webhook.list")) is not None:
            return early
        hooks = [h.as_api() for h in sb.hub.webhooks.values()]
        return {"total": len(hooks), "list": hooks}

    @r.get("/Webhook/{webhook_id}")
    async def webhook_get(request: Request, webhook_id: str) -> Any:
        if (early := await sb.enter(request, "Webhook.get")) is not None:
            return early
        hook = sb.hub.webhooks.get(webhook_id)
        return hook.as_api() if hook else _error(404, "Not Found")

    @r.delete("/Webhook/{webhook_id}")
    async def webhook_delete(request: Request, webhook_id: str) -> Any:
        if (early := await sb.enter(request, "Webhook.delete", write=True)) is not None:
            return early
        return sb.wrote("Webhook.delete", True if sb.hub.webhooks.pop(webhook_id, None) else _error(404, "Not Found"))

    @r.get("/{entity}")
    async def list_records(request: Request, entity: str) -> Any:
        if (early := await sb.enter(request, f"{entity}.list")) is not None:
            return early
        try:
            params = parse_bracket_params(list(request.query_params.multi_items()))
            if "searchParams" in params:  # EspoCRM 7+: the whole query as one JSON parameter
                params = {**params, **json.loads(params.pop("searchParams"))}
            max_size = parse_int(params.get("maxSize"), "maxSize", 20)
            offset = parse_int(params.get("offset"), "offset", 0)
            if max_size > MAX_SIZE_LIMIT:
                return _error(403, f"Max size should not exceed {MAX_SIZE_LIMIT}. Use offset and limit.")
            if max_size < 0 or offset < 0:
                return _error(400, "Bad maxSize or offset")
            select = params.get("select")
            if isinstance(select, str):
                select = [s.strip() for s in select.split(",") if s.strip()]
            total, rows = sb.store.query(
                entity,
                where=where_clauses(params.get("where")),
                offset=offset,
                max_size=max_size,
                order_by=params.get("orderBy") or None,
                order=params.get("order") or None,
                select=select or None,
            )
        except (QueryError, ValueError) as exc:
            return _error(400, str(exc))
        if getattr(request.state, "empty_list", False):
            return {"total": 0, "list": []}
        return {"total": total, "list": rows}

    @r.get("/{entity}/{record_id}")
    async def get_record(request: Request, entity: str, record_id: str) -> Any:
        if (early := await sb.enter(request, f"{entity}.get")) is not None:
            return early
        record = sb.store.get(entity, record_id)
        return dict(record) if record is not None else _error(404, "Not Found")

    @r.post("/{entity}")
    async def create_record(request: Request, entity: str) -> Any:
        if (early := await sb.enter(request, f"{entity}.create", write=True)) is not None:
            return early
        data = await _json_object(request)
        if isinstance(data, Response):
            return data
        return sb.wrote(f"{entity}.create", sb.create(entity, data, own=True))

    @r.api_route("/{entity}/{record_id}", methods=["PUT", "PATCH"])
    async def update_record(request: Request, entity: str, record_id: str) -> Any:
        if (early := await sb.enter(request, f"{entity}.update", write=True)) is not None:
            return early
        data = await _json_object(request)
        if isinstance(data, Response):
            return data
        return sb.wrote(
            f"{entity}.update",
            sb.update(entity, record_id, data, own=True, version=request.headers.get("x-version-number")),
        )

    @r.delete("/{entity}/{record_id}")
    async def delete_record(request: Request, entity: str, record_id: str) -> Any:
        if (early := await sb.enter(request, f"{entity}.delete", write=True)) is not None:
            return early
        return sb.wrote(f"{entity}.delete", sb.delete(entity, record_id, own=True))

    return r


def admin_extra_router(sb: EspoSandbox) -> APIRouter:
    r = APIRouter(prefix="/_sandbox")

    def _count(name: str) -> None:
        sb.control.count(name, write=True, principal="crm-user")

    @r.post("/user/{entity}")
    async def user_create(request: Request, entity: str) -> Any:
        data = await _json_object(request)
        if isinstance(data, Response):
            return data
        _count(f"user.{entity}.create")
        return sb.create(entity, data, own=False)

    @r.api_route("/user/{entity}/{record_id}", methods=["PUT", "PATCH"])
    async def user_update(request: Request, entity: str, record_id: str) -> Any:
        data = await _json_object(request)
        if isinstance(data, Response):
            return data
        _count(f"user.{entity}.update")
        return sb.update(entity, record_id, data, own=False, version=request.headers.get("x-version-number"))

    @r.delete("/user/{entity}/{record_id}")
    async def user_delete(entity: str, record_id: str) -> Any:
        _count(f"user.{entity}.delete")
        return sb.delete(entity, record_id, own=False)

    @r.post("/webhooks/flush")
    async def flush() -> dict[str, Any]:
        outcomes = await sb.hub.flush()
        return {"batches": outcomes, "pending": sum(h.pending() for h in sb.hub.webhooks.values())}

    @r.get("/webhooks/log")
    async def delivery_log() -> dict[str, Any]:
        return {"deliveries": list(sb.hub.log)}

    @r.post("/config")
    async def config(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        return sb.hub.configure(body)

    @r.get("/state")
    async def state() -> dict[str, Any]:
        return sb.state()

    return r


def create_app() -> FastAPI:
    sb = EspoSandbox()
    app = make_app("EspoCRM sandbox", sb.control, reset_state=sb.reset, seed_state=sb.seed)
    app.include_router(admin_extra_router(sb))
    app.include_router(api_router(sb))
    app.state.sandbox = sb

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sb.hub.start_auto()  # from SANDBOX_ESPOCRM_AUTO_FLUSH_S, for `python -m sandbox`
        try:
            yield
        finally:
            sb.hub.stop_auto()

    app.router.lifespan_context = lifespan
    return app
