"""The Advoware sandbox as a FastAPI app: security gateway, Termine, Mitarbeiter, Beteiligte.

Endpoint names (for `/_sandbox/faults` and `/_sandbox/stats`): Token, Configurator, Termine.list,
Termine.get, Termine.create, Termine.update, Termine.delete, Mitarbeiter.list, Beteiligte.list,
Beteiligte.get, Beteiligte.create, Beteiligte.update, Beteiligte.delete, Kommunikationen.list,
Kommunikationen.create, Kommunikationen.update, Kommunikationen.delete. The principal of the
Termine endpoints is the employee code (kuerzel): the list's query, else the record's.
A write counts in the stats only when it changed something.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from sandbox.advoware.gateway import Credentials, TokenError, TokenGateway
from sandbox.advoware.store import AdvowareStore, InvalidRecord, StaleRowId
from sandbox.common import FaultSpec, SandboxControl, make_app
from sandbox.compression import MODES, Compression, Mode, Switch

log = logging.getLogger(__name__)
API = "/api/v1/advonet"


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "Message": message, **extra}, status_code=status)


def _fault_response(fault: FaultSpec) -> JSONResponse:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    message = "Service temporarily unavailable" if fault.status == 503 else "Injected error"
    body = {"error": fault.reason or "injected_fault", "Message": message, "status": fault.status}
    return JSONResponse(body, status_code=fault.status, headers=headers)


def _count_write(control: SandboxControl, endpoint: str, principal: str | None) -> None:
    # SandboxControl.enter(count_write=False) left the write uncounted: count it now it succeeded.
    control.count_write(endpoint, principal)


def _int_param(value: str | None, name: str) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise HTTPException(400, f"{name} must be an integer") from None


def _date_param(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        raise HTTPException(400, f"{name} must be YYYY-MM-DD") from None


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "body must be a JSON object")
    return body


def create_app() -> FastAPI:
    control = SandboxControl("advoware")
    gateway = TokenGateway(Credentials.from_env())
    store = AdvowareStore()

    default_compress: Mode = os.environ.get("SANDBOX_ADVOWARE_COMPRESS", "off")  # type: ignore[assignment]
    if default_compress not in MODES:
        raise ValueError(f"SANDBOX_ADVOWARE_COMPRESS must be one of {', '.join(MODES)}")
    compression = Switch(default_compress)

    def reset_state() -> None:
        store.reset()
        gateway.reset()
        compression.mode = default_compress

    def seed_state(body: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"status": "seeded", **store.seed(body)}
        except (InvalidRecord, ValueError, TypeError, AttributeError) as exc:
            raise HTTPException(400, f"bad seed body: {exc}") from None

    app = make_app("Advoware sandbox", control, reset_state=reset_state, seed_state=seed_state)
    # IIS compresses answers for clients that offer gzip/deflate: POST /_sandbox/config {"compress": ...}
    app.add_middleware(Compression, switch=compression, prefix="/api/")

    async def guard(
        request: Request, endpoint: str, *, write: bool = False, principal: str | None = None
    ) -> tuple[Response | None, FaultSpec | None]:
        """Bearer check, then stats/latency/faults. Answers (error response or None, fault)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not gateway.is_valid(token.strip()):
            control.count(endpoint, write=False, principal=principal)
            return _error(401, "unauthorized", "missing, unknown or expired bearer token"), None
        fault = await control.enter(endpoint, write=write, principal=principal, count_write=False)
        if fault is not None and fault.kind == "status":
            return _fault_response(fault), fault
        return None, fault

    def empty(fault: FaultSpec | None) -> bool:
        return fault is not None and fault.kind == "empty_list"

    # -- admin extras ---------------------------------------------------------------------------
    @app.post("/_sandbox/config")
    async def config(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        if body.get("token_ttl_s") is not None:
            gateway.token_ttl_s = float(body["token_ttl_s"])
        if body.get("clock_skew_s") is not None:
            gateway.clock_skew_s = float(body["clock_skew_s"])
        if body.get("compress") is not None:
            if body["compress"] not in MODES:
                raise HTTPException(400, f"compress must be one of {', '.join(MODES)}")
            compression.mode = body["compress"]
        return {"token_ttl_s": gateway.token_ttl_s, "clock_skew_s": gateway.clock_skew_s, "compress": compression.mode}

    @app.post("/_sandbox/revoke_tokens")
    async def revoke_tokens() -> dict[str, Any]:
        return {"revoked": gateway.revoke_all()}

    @app.get("/_sandbox/state")
    async def state() -> dict[str, Any]:
        return store.dump()

    # -- discovery and security gateway ---------------------------------------------------------
    @app.get("/AdvonetConfigurator/api/Url")
    async def configurator(request: Request, Kanzlei: str = "") -> Response:  # noqa: N803 - wire name
        fault = await control.enter("Configurator")
        if fault is not None and fault.kind == "status":
            return _fault_response(fault)
        if Kanzlei != gateway.credentials.kanzlei:
            return _error(404, "unknown_kanzlei", "unknown Kanzlei")
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"connectorUrl": base, "relayUrl": "", "securityGateway": base})

    @app.post("/api/v1/Token")
    async def token(request: Request) -> Response:
        try:  # read the body first: after a stalled (timeout) fault the client may be gone
            body: Any = await request.json()
        except ValueError:
            body = None
        fault = await control.enter("Token")
        if fault is not None and fault.kind == "status":
            return _fault_response(fault)
        if body is None:
            return _error(400, "invalid_request", "body is not JSON")
        try:
            answer = gateway.issue(body)
        except TokenError as exc:
            log.info("advoware sandbox: token refused (%s)", exc.error)
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(answer)

    # -- Termine --------------------------------------------------------------------------------
    @app.get(f"{API}/Termine")
    async def termine_get(request: Request) -> Response:
        query = request.query_params
        if "frnr" in query:  # only the lower-case filter works; `frNr` is ignored as in production
            frnr = _int_param(query["frnr"], "frnr")
            known = store.get_termin(frnr)
            refused, fault = await guard(request, "Termine.get", principal=known and known["kuerzel"])
            if refused:
                return refused
            record = store.get_termin(frnr)
            return JSONResponse([] if empty(fault) or record is None else [record])
        kuerzel = query.get("kuerzel")
        refused, fault = await guard(request, "Termine.list", principal=kuerzel)
        if refused:
            return refused
        since, until = _date_param(query.get("from"), "from"), _date_param(query.get("to"), "to")
        if empty(fault):  # the production glitch: an empty answer that does not mean "nothing there"
            return JSONResponse([])
        return JSONResponse(store.list_termine(kuerzel, since, until))

    @app.post(f"{API}/Termine")
    async def termine_create(request: Request) -> Response:
        body = await _json_object(request)
        principal = body.get("kuerzel") or body.get("anwalt") or ""
        refused, _ = await guard(request, "Termine.create", write=True, principal=principal)
        if refused:
            return refused
        try:
            record = store.add_termin(body, keep_frnr=False)
        except InvalidRecord as exc:
            return _error(400, "invalid_record", str(exc))
        _count_write(control, "Termine.create", principal)
        log.info("advoware sandbox: created Termin frNr=%s", record["frNr"])
        return JSONResponse(record)

    @app.put(f"{API}/Termine")
    async def termine_update(request: Request) -> Response:
        frnr = _int_param(request.query_params.get("frnr"), "frnr")
        body = await _json_object(request)
        known = store.get_termin(frnr)
        principal = known["kuerzel"] if known else body.get("kuerzel")
        refused, _ = await guard(request, "Termine.update", write=True, principal=principal)
        if refused:
            return refused
        try:
            record = store.update_termin(frnr, body)
        except InvalidRecord as exc:
            return _error(400, "invalid_record", str(exc))
        if record is None:
            return _error(404, "not_found", f"no Termin with frNr {frnr}")
        _count_write(control, "Termine.update", principal)
        return JSONResponse(record)

    @app.delete(f"{API}/Termine")
    async def termine_delete(request: Request) -> Response:
        frnr = _int_param(request.query_params.get("frnr"), "frnr")
        known = store.get_termin(frnr)
        principal = known["kuerzel"] if known else None
        refused, _ = await guard(request, "Termine.delete", write=True, principal=principal)
        if refused:
            return refused
        if not store.delete_termin(frnr):
            return _error(404, "not_found", f"no Termin with frNr {frnr}")
        _count_write(control, "Termine.delete", principal)
        return JSONResponse({"frNr": frnr, "deleted": True})

    # -- Mitarbeiter ----------------------------------------------------------------------------
    @app.get(f"{API}/Mitarbeiter")
    async def mitarbeiter(request: Request) -> Response:
        refused, fault = await guard(request, "Mitarbeiter.list")
        if refused:
            return refused
        return JSONResponse([] if empty(fault) else [dict(m) for m in store.mitarbeiter])

    # -- Beteiligte -----------------------------------------------------------------------------
    @app.get(f"{API}/Beteiligte")
    async def beteiligte_list(request: Request, name: str | None = None) -> Response:
        refused, fault = await guard(request, "Beteiligte.list")
        if refused:
            return refused
        return JSONResponse([] if empty(fault) else store.list_beteiligte(name))

    @app.get(f"{API}/Beteiligte/{{bet_nr}}")
    async def beteiligte_get(request: Request, bet_nr: int) -> Response:
        refused, _ = await guard(request, "Beteiligte.get")
        if refused:
            return refused
        record = store.get_beteiligter(bet_nr)
        return JSONResponse(record) if record else _error(404, "not_found", f"no Beteiligter {bet_nr}")

    @app.post(f"{API}/Beteiligte")
    async def beteiligte_create(request: Request) -> Response:
        body = await _json_object(request)
        refused, _ = await guard(request, "Beteiligte.create", write=True)
        if refused:
            return refused
        try:
            record = store.add_beteiligter(body)
        except InvalidRecord as exc:
            return _error(400, "invalid_record", str(exc))
        _count_write(control, "Beteiligte.create", None)
        log.info("advoware sandbox: created Beteiligter betNr=%s", record["betNr"])
        return JSONResponse(record)

    @app.put(f"{API}/Beteiligte/{{bet_nr}}")
    async def beteiligte_update(request: Request, bet_nr: int) -> Response:
        body = await _json_object(request)
        refused, _ = await guard(request, "Beteiligte.update", write=True)
        if refused:
            return refused
        try:
            record = store.update_beteiligter(bet_nr, body)
        except StaleRowId as exc:
            return _error(409, "conflict", "rowId is stale: the record changed meanwhile", rowId=str(exc))
        except InvalidRecord as exc:
            return _error(400, "invalid_record", str(exc))
        if record is None:
            return _error(404, "not_found", f"no Beteiligter {bet_nr}")
        _count_write(control, "Beteiligte.update", None)
        return JSONResponse(record)

    @app.delete(f"{API}/Beteiligte/{{bet_nr}}")
    async def beteiligte_delete(request: Request, bet_nr: int) -> Response:
        refused, _ = await guard(request, "Beteiligte.delete", write=True)
        if refused:
            return refused
        if not store.delete_beteiligter(bet_nr):
            return _error(404, "not_found", f"no Beteiligter {bet_nr}")
        _count_write(control, "Beteiligte.delete", None)
        return JSONResponse({"betNr": bet_nr, "deleted": True})

    # -- Kommunikationen ------------------------------------------------------------------------
    @app.get(f"{API}/Beteiligte/{{bet_nr}}/Kommunikationen")
    async def komm_list(request: Request, bet_nr: int) -> Response:
        refused, fault = await guard(request, "Kommunikationen.list")
        if refused:
            return refused
        records = store.list_kommunikationen(bet_nr)
        if records is None:
            return _error(404, "not_found", f"no Beteiligter {bet_nr}")
        return JSONResponse([] if empty(fault) else records)

    @app.post(f"{API}/Beteiligte/{{bet_nr}}/Kommunikationen")
    async def komm_create(request: Request, bet_nr: int) -> Response:
        body = await _json_object(request)
        refused, _ = await guard(request, "Kommunikationen.create", write=True)
        if refused:
            return refused
        if bet_nr not in store.beteiligte:
            return _error(404, "not_found", f"no Beteiligter {bet_nr}")
        try:
            record = store.add_kommunikation(bet_nr, body)
        except InvalidRecord as exc:
            return _error(400, "invalid_record", str(exc))
        _count_write(control, "Kommunikationen.create", None)
        return JSONResponse(record)

    @app.put(f"{API}/Beteiligte/{{bet_nr}}/Kommunikationen/{{komm_id}}")
    async def komm_update(request: Request, bet_nr: int, komm_id: int) -> Response:
        body = await _json_object(request)
        refused, _ = await guard(request, "Kommunikationen.update", write=True)
        if refused:
            return refused
        try:
            record = store.update_kommunikation(bet_nr, komm_id, body)
        except InvalidRecord as exc:
            return _error(400, "invalid_record", str(exc))
        if record is None:
            return _error(404, "not_found", f"no Kommunikation {komm_id} of Beteiligter {bet_nr}")
        _count_write(control, "Kommunikationen.update", None)
        return JSONResponse(record)

    @app.delete(f"{API}/Beteiligte/{{bet_nr}}/Kommunikationen/{{komm_id}}")
    async def komm_delete(request: Request, bet_nr: int, komm_id: int) -> Response:
        refused, _ = await guard(request, "Kommunikationen.delete", write=True)
        if refused:
            return refused
        # Production refuses to delete communications through the API; so does the sandbox.
        return _error(403, "forbidden", "deleting a Kommunikation is not allowed")

    return app
