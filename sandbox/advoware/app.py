"""The Advoware sandbox as a FastAPI app: security gateway, Termine, Mitarbeiter, Beteiligte.

Endpoint names (for `/_sandbox/faults` and `/_sandbox/stats`): Token, Configurator, Termine.list,
Termine.get, Termine.create, Termine.update, Termine.delete, Mitarbeiter.list, Beteiligte.list,
Beteiligte.get, Beteiligte.create, Beteiligte.update, Beteiligte.delete, Kommunikationen.list,
Kommunikationen.create, Kommunikationen.update, Kommunikationen.delete. The principal of the
Termine endpoints is the employee code (kuerzel): the list's query, else the record's.
A write counts in the stats only when it changed something.

One router per resource (sandbox/advoware/routes/); the state they share is on `app.state.advoware`
(sandbox/advoware/state.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.advoware.routes import admin, beteiligte, kommunikationen, mitarbeiter, security, termine
from sandbox.advoware.state import AdvowareSandbox
from sandbox.common import make_app
from sandbox.compression import Compression


def create_app() -> FastAPI:
    sandbox = AdvowareSandbox()
    app = make_app("Advoware sandbox", sandbox.control, reset_state=sandbox.reset, seed_state=sandbox.seed)
    app.state.advoware = sandbox
    # IIS compresses answers for clients that offer gzip/deflate: POST /_sandbox/config {"compress": ...}
    app.add_middleware(Compression, switch=sandbox.compression, prefix="/api/")
    for part in (admin, security, termine, mitarbeiter, beteiligte, kommunikationen):
        app.include_router(part.router)
    return app
