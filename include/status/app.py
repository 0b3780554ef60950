"""The status view as a FastAPI app: `/` the HTML page, `/api` the same data as JSON, and one write:
`POST /dead-letters/{id}/replay` (the page's replay buttons), and `POST /calendar/{employee}/resolve-stop`
(the answer to a safety stop: refill Google from Advoware, or confirm the deletions).

The caller decides where the state lives (`sources`, called per request so a changed connection is
picked up), who may look (`dependencies`, e.g. the Airflow JWT check of the plugin) and, through a
`Host`, what needs Airflow: who the user is, whether they may write and trigger a DAG, triggering
the run, and links into the Airflow UI. Without a host the view is read-only and links nowhere.
Handlers are plain `def`: FastAPI runs them in its thread pool, so the blocking psycopg/Redis calls
never stall the server's event loop.

A replay is refused unless: the host lets the user write (`may_write`, e.g. POST on the custom
view) and trigger the DAG the replay starts (`may_trigger`); the browser says the form came from this
origin (Sec-Fetch-Site / Origin); and the form's CSRF token was made for this user (include.status.replay).
Then the answer is a redirect to the page, which shows the letter's state and the run it started.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from fastapi import FastAPI, Form, Query, Request
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from include import safety_stop
from include.checks.verdict import Verdict
from include.dag_ids import CALENDAR_SYNC_DAG
from include.hub.db import connect
from include.hub.status import StatusQuery
from include.status import replay as replays
from include.status.checks_page import render_checks
from include.status.page import Links, render
from include.status.queries import Sources, collect

log = logging.getLogger(__name__)

# The page has no scripts and no external assets; it may only be framed by its own origin (the UI),
# and its forms may only post to it.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; "
    "form-action 'self'; base-uri 'none'",
}


class Host(Protocol):
    """What the Airflow plugin provides (tests pass a fake)."""

    @property
    def csrf_key(self) -> bytes: ...

    def user_id(self, request: Request) -> str: ...

    def may_write(self, request: Request) -> bool: ...

    def may_trigger(self, request: Request, dag_id: str) -> bool: ...

    def trigger(self, request: Request, run: replays.RunRequest) -> bool: ...

    def links(self, status: dict[str, Any], replayed: int | None, started: str | None = None) -> Links: ...


def _refusal(code: int, message: str) -> HTMLResponse:
    body = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Sync status</title></head><body>"
        f"<h1>Refused</h1><p id=refusal>{html.escape(message)}</p>"
        f"<p><a href='../../'>Back to the sync status</a></p></body></html>"
    )
    return HTMLResponse(body, status_code=code, headers=SECURITY_HEADERS)


def _writer(host: Host | None, request: Request, csrf_token: str, what: str) -> Host | HTMLResponse:
    """The host, if the user may write and the form is theirs from this site; else the refusal."""
    if host is None or not host.may_write(request):
        return _refusal(403, f"You may look at the sync status but not {what}.")
    if not replays.same_origin(request.headers):
        return _refusal(403, "The form did not come from this site.")
    if not replays.csrf_valid(host.csrf_key, host.user_id(request), csrf_token):
        return _refusal(403, "The form has expired or was not made for you: reload the page and try again.")
    return host


def create_app(
    sources: Callable[[], Sources],
    *,
    dependencies: Sequence[Depends] = (),
    host: Host | None = None,
    title: str = "Sync status",
    checks: Callable[[], list[Verdict]] | None = None,
) -> FastAPI:
    """`checks` runs the connection check (include.checks.run.run_all with the settings); None: no page."""
    app = FastAPI(title=title, dependencies=list(dependencies), docs_url=None, redoc_url=None, openapi_url=None)

    def _status(limit: int, replayed: int | None = None) -> dict[str, Any]:
        src = sources()
        try:
            return collect(src, StatusQuery(audit_limit=limit, dead_letter_id=replayed))
        finally:
            if src.redis_client is not None:
                src.redis_client.close()

    @app.get("/", response_class=HTMLResponse)
    def page(
        request: Request,
        limit: int = Query(20, ge=1, le=200, description="audited writes to show"),
        replayed: int | None = Query(None, ge=1, description="show this dead letter's state"),
        started: str | None = Query(None, max_length=250, description="show this run (a stop's answer)"),
    ) -> HTMLResponse:
        status = _status(limit, replayed)
        if started:
            status["started"] = started
        links = Links()
        if host is not None:
            links = host.links(status, replayed, started)
            if host.may_write(request):
                links = Links(
                    links.employee_logs,
                    links.party_run_log,
                    replays.csrf_token(host.csrf_key, host.user_id(request)),
                    links.replay_runs,
                )
        return HTMLResponse(render(status, links), headers=SECURITY_HEADERS)

    @app.get("/api")
    def api(limit: int = Query(20, ge=1, le=200)) -> JSONResponse:
        return JSONResponse(_status(limit), headers=SECURITY_HEADERS)

    if checks is not None:

        @app.get("/check", response_class=HTMLResponse)
        def check_page() -> HTMLResponse:
            return HTMLResponse(render_checks(checks()), headers=SECURITY_HEADERS)

        @app.get("/api/check")
        def check_api() -> JSONResponse:
            verdicts = checks()
            return JSONResponse(
                {"ok": all(v.ok for v in verdicts), "verdicts": [v.as_dict() for v in verdicts]},
                headers=SECURITY_HEADERS,
            )

    @app.post("/dead-letters/{dead_letter_id}/replay", response_model=None)
    def replay(dead_letter_id: int, request: Request, csrf_token: str = Form("")) -> RedirectResponse | HTMLResponse:
        writer = _writer(host, request, csrf_token, "replay dead letters")
        if isinstance(writer, HTMLResponse):
            return writer
        src = sources()
        try:
            row = replays.lookup(src.hub_dsn, dead_letter_id)
            if row is None:
                return _refusal(404, f"Dead letter {dead_letter_id} does not exist.")
            if not writer.may_trigger(request, replays.target_dag(row)):
                return _refusal(403, f"Replaying it starts a {replays.target_dag(row)} run, which you may not trigger.")
            try:
                done = replays.replay(
                    src.hub_dsn,
                    dead_letter_id,
                    lambda ids: _queue(src).enqueue(ids, "replay"),
                    lambda run: writer.trigger(request, run),
                )
            except (LookupError, ValueError) as exc:
                return _refusal(409, str(exc))
        finally:
            if src.redis_client is not None:
                src.redis_client.close()
        run = done.run
        log.info(
            "status view: dead letter %s replayed by %s; run %s %s",
            dead_letter_id,
            writer.user_id(request),
            run.run_id if run else None,
            "triggered" if done.triggered else f"not triggered ({done.trigger_error or 'exists'})",
        )
        return RedirectResponse(f"../../?replayed={dead_letter_id}", status_code=303, headers=SECURITY_HEADERS)

    @app.post("/calendar/{employee}/resolve-stop", response_model=None)
    def resolve_stop(
        employee: str, request: Request, action: str = Form(""), csrf_token: str = Form("")
    ) -> RedirectResponse | HTMLResponse:
        """The answer to an employee's safety stop (include/safety_stop.py), as the CLI gives it."""
        writer = _writer(host, request, csrf_token, "answer a safety stop")
        if isinstance(writer, HTMLResponse):
            return writer
        if action not in safety_stop.ACTIONS:
            return _refusal(400, "Choose one of the two answers.")
        if not writer.may_trigger(request, CALENDAR_SYNC_DAG):
            return _refusal(403, f"The answer starts a {CALENDAR_SYNC_DAG} run, which you may not trigger.")
        with connect(sources().hub_dsn) as conn:
            stopped = safety_stop.stopped_run(conn, employee)
        if stopped is None:
            return _refusal(409, f"The latest calendar run of {employee} did not stop: nothing to answer.")
        run = safety_stop.stop_run(employee, action, stopped["run_id"])
        try:
            created = writer.trigger(request, run)
        except Exception as exc:  # Airflow's database busy: say so, nothing else happened
            return _refusal(503, f"The run could not be started ({type(exc).__name__}); try again.")
        log.info(
            "status view: safety stop of %s answered (%s) by %s; run %s %s",
            employee,
            action,
            writer.user_id(request),
            run.run_id,
            "triggered" if created else "existed",
        )
        return RedirectResponse(f"../../?started={quote(run.run_id)}", status_code=303, headers=SECURITY_HEADERS)

    return app


def _queue(src: Sources) -> Any:
    from include.queue.party_queue import PartyQueue

    if src.redis_client is None:
        raise RuntimeError("the party queue (Redis) is not configured")
    return PartyQueue(src.redis_client)
