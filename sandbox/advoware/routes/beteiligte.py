"""`Beteiligte`: list (by name), get, create, update (409 for a stale rowId), delete."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sandbox.advoware.state import SandboxDep, empty
from sandbox.advoware.store import InvalidRecord, StaleRowId
from sandbox.advoware.wire import API, error, json_object

log = logging.getLogger("sandbox.advoware.app")  # the logger the sandbox always logged to
router = APIRouter()


@router.get(f"{API}/Beteiligte")
async def beteiligte_list(sandbox: SandboxDep, request: Request, name: str | None = None) -> Response:
    refused, fault = await sandbox.guard(request, "Beteiligte.list")
    if refused:
        return refused
    return JSONResponse([] if empty(fault) else sandbox.store.list_beteiligte(name))


@router.get(f"{API}/Beteiligte/{{bet_nr}}")
async def beteiligte_get(sandbox: SandboxDep, request: Request, bet_nr: int) -> Response:
    refused, _ = await sandbox.guard(request, "Beteiligte.get")
    if refused:
        return refused
    record = sandbox.store.get_beteiligter(bet_nr)
    return JSONResponse(record) if record else error(404, "not_found", f"no Beteiligter {bet_nr}")


@router.post(f"{API}/Beteiligte")
async def beteiligte_create(sandbox: SandboxDep, request: Request) -> Response:
    body = await json_object(request)
    refused, _ = await sandbox.guard(request, "Beteiligte.create", write=True)
    if refused:
        return refused
    try:
        record = sandbox.store.add_beteiligter(body)
    except InvalidRecord as exc:
        return error(400, "invalid_record", str(exc))
    sandbox.count_write("Beteiligte.create", None)
    log.info("advoware sandbox: created Beteiligter betNr=%s", record["betNr"])
    return JSONResponse(record)


@router.put(f"{API}/Beteiligte/{{bet_nr}}")
async def beteiligte_update(sandbox: SandboxDep, request: Request, bet_nr: int) -> Response:
    body = await json_object(request)
    refused, _ = await sandbox.guard(request, "Beteiligte.update", write=True)
    if refused:
        return refused
    try:
        record = sandbox.store.update_beteiligter(bet_nr, body)
    except StaleRowId as exc:
        return error(409, "conflict", "rowId is stale: the record changed meanwhile", rowId=str(exc))
    except InvalidRecord as exc:
        return error(400, "invalid_record", str(exc))
    if record is None:
        return error(404, "not_found", f"no Beteiligter {bet_nr}")
    sandbox.count_write("Beteiligte.update", None)
    return JSONResponse(record)


@router.delete(f"{API}/Beteiligte/{{bet_nr}}")
async def beteiligte_delete(sandbox: SandboxDep, request: Request, bet_nr: int) -> Response:
    refused, _ = await sandbox.guard(request, "Beteiligte.delete", write=True)
    if refused:
        return refused
    if not sandbox.store.delete_beteiligter(bet_nr):
        return error(404, "not_found", f"no Beteiligter {bet_nr}")
    sandbox.count_write("Beteiligte.delete", None)
    return JSONResponse({"betNr": bet_nr, "deleted": True})
