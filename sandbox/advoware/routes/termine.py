"""`Termine`: list (by kuerzel and dates) or get (by frnr), create, update, delete. The principal of
these endpoints is the employee code (kuerzel): the list's query, else the record's."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sandbox.advoware.state import SandboxDep, empty
from sandbox.advoware.store import InvalidRecord
from sandbox.advoware.wire import API, date_param, error, int_param, json_object

log = logging.getLogger("sandbox.advoware.app")  # the logger the sandbox always logged to
router = APIRouter()


@router.get(f"{API}/Termine")
async def termine_get(sandbox: SandboxDep, request: Request) -> Response:
    query = request.query_params
    if "frnr" in query:  # only the lower-case filter works; `frNr` is ignored as in production
        frnr = int_param(query["frnr"], "frnr")
        known = sandbox.store.get_termin(frnr)
        refused, fault = await sandbox.guard(request, "Termine.get", principal=known["kuerzel"] if known else None)
        if refused:
            return refused
        record = sandbox.store.get_termin(frnr)
        return JSONResponse([] if empty(fault) or record is None else [record])
    kuerzel = query.get("kuerzel")
    refused, fault = await sandbox.guard(request, "Termine.list", principal=kuerzel)
    if refused:
        return refused
    since, until = date_param(query.get("from"), "from"), date_param(query.get("to"), "to")
    if empty(fault):  # the production glitch: an empty answer that does not mean "nothing there"
        return JSONResponse([])
    return JSONResponse(sandbox.store.list_termine(kuerzel, since, until))


@router.post(f"{API}/Termine")
async def termine_create(sandbox: SandboxDep, request: Request) -> Response:
    body = await json_object(request)
    principal = body.get("kuerzel") or body.get("anwalt") or ""
    refused, _ = await sandbox.guard(request, "Termine.create", write=True, principal=principal)
    if refused:
        return refused
    try:
        record = sandbox.store.add_termin(body, keep_frnr=False)
    except InvalidRecord as exc:
        return error(400, "invalid_record", str(exc))
    sandbox.count_write("Termine.create", principal)
    log.info("advoware sandbox: created Termin frNr=%s", record["frNr"])
    return JSONResponse(record)


@router.put(f"{API}/Termine")
async def termine_update(sandbox: SandboxDep, request: Request) -> Response:
    frnr = int_param(request.query_params.get("frnr"), "frnr")
    body = await json_object(request)
    known = sandbox.store.get_termin(frnr)
    principal = known["kuerzel"] if known else body.get("kuerzel")
    refused, _ = await sandbox.guard(request, "Termine.update", write=True, principal=principal)
    if refused:
        return refused
    try:
        record = sandbox.store.update_termin(frnr, body)
    except InvalidRecord as exc:
        return error(400, "invalid_record", str(exc))
    if record is None:
        return error(404, "not_found", f"no Termin with frNr {frnr}")
    sandbox.count_write("Termine.update", principal)
    return JSONResponse(record)


@router.delete(f"{API}/Termine")
async def termine_delete(sandbox: SandboxDep, request: Request) -> Response:
    frnr = int_param(request.query_params.get("frnr"), "frnr")
    known = sandbox.store.get_termin(frnr)
    principal = known["kuerzel"] if known else None
    refused, _ = await sandbox.guard(request, "Termine.delete", write=True, principal=principal)
    if refused:
        return refused
    if not sandbox.store.delete_termin(frnr):
        return error(404, "not_found", f"no Termin with frNr {frnr}")
    sandbox.count_write("Termine.delete", principal)
    return JSONResponse({"frNr": frnr, "deleted": True})
