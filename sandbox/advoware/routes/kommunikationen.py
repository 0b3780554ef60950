"""`Beteiligte/{betNr}/Kommunikationen`: list, create, update; a delete is refused, as in production."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sandbox.advoware.state import SandboxDep, empty
from sandbox.advoware.store import InvalidRecord
from sandbox.advoware.wire import API, error, json_object

router = APIRouter()


@router.get(f"{API}/Beteiligte/{{bet_nr}}/Kommunikationen")
async def komm_list(sandbox: SandboxDep, request: Request, bet_nr: int) -> Response:
    refused, fault = await sandbox.guard(request, "Kommunikationen.list")
    if refused:
        return refused
    records = sandbox.store.list_kommunikationen(bet_nr)
    if records is None:
        return error(404, "not_found", f"no Beteiligter {bet_nr}")
    return JSONResponse([] if empty(fault) else records)


@router.post(f"{API}/Beteiligte/{{bet_nr}}/Kommunikationen")
async def komm_create(sandbox: SandboxDep, request: Request, bet_nr: int) -> Response:
    body = await json_object(request)
    refused, _ = await sandbox.guard(request, "Kommunikationen.create", write=True)
    if refused:
        return refused
    if bet_nr not in sandbox.store.beteiligte:
        return error(404, "not_found", f"no Beteiligter {bet_nr}")
    try:
        record = sandbox.store.add_kommunikation(bet_nr, body)
    except InvalidRecord as exc:
        return error(400, "invalid_record", str(exc))
    sandbox.count_write("Kommunikationen.create", None)
    return JSONResponse(record)


@router.put(f"{API}/Beteiligte/{{bet_nr}}/Kommunikationen/{{komm_id}}")
async def komm_update(sandbox: SandboxDep, request: Request, bet_nr: int, komm_id: int) -> Response:
    body = await json_object(request)
    refused, _ = await sandbox.guard(request, "Kommunikationen.update", write=True)
    if refused:
        return refused
    try:
        record = sandbox.store.update_kommunikation(bet_nr, komm_id, body)
    except InvalidRecord as exc:
        return error(400, "invalid_record", str(exc))
    if record is None:
        return error(404, "not_found", f"no Kommunikation {komm_id} of Beteiligter {bet_nr}")
    sandbox.count_write("Kommunikationen.update", None)
    return JSONResponse(record)


@router.delete(f"{API}/Beteiligte/{{bet_nr}}/Kommunikationen/{{komm_id}}")
async def komm_delete(sandbox: SandboxDep, request: Request, bet_nr: int, komm_id: int) -> Response:
    refused, _ = await sandbox.guard(request, "Kommunikationen.delete", write=True)
    if refused:
        return refused
    # Production refuses to delete communications through the API; so does the sandbox.
    return error(403, "forbidden", "deleting a Kommunikation is not allowed")
