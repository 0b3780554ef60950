"""Shared machinery of the sandbox services: fault injection, request statistics, admin routes.

Every sandbox service (Advoware, Google Calendar, EspoCRM) owns one `SandboxControl`. A route
handler calls `await control.enter(endpoint, write=..., principal=...)` first: that counts the
request, applies latency and returns the fault to inject (or None). How a fault is rendered is the
service's business (Google answers with Google's error body, Advoware with its own).

Admin body of `POST /_sandbox/faults` (documented in docs/interfaces.md):

    {"latency_ms": 30,                     # added to every request (optional)
     "clear": false,                        # drop all faults first (optional)
     "faults": [
        {"match": "Termine.list",           # endpoint name, fnmatch pattern ("*" = all, "events.*")
         "kind": "status",                  # status | timeout | drop | empty_list
         "status": 503, "retry_after": 1,   # for kind=status
         "count": 2,                        # the next n matching calls (deterministic) ...
         "rate": 0.2, "seed": 7,            # ... or a share of matching calls (seeded, reproducible)
         "delay_s": 5,                      # for kind=timeout: how long to stall before answering
         "principal": "ab"}                 # optional: only for this employee / quota user
     ]}
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, Body, FastAPI
from pydantic import BaseModel, Field

FaultKind = Literal["status", "timeout", "drop", "empty_list"]


class FaultSpec(BaseModel):
    match: str = "*"
    kind: FaultKind = "status"
    status: int = 503
    retry_after: int | None = None
    count: int | None = Field(default=None, ge=0)
    rate: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int = 0
    delay_s: float = 30.0
    principal: str | None = None
    reason: str | None = None  # service-specific error reason (e.g. Google's "rateLimitExceeded")


class FaultsBody(BaseModel):
    latency_ms: float | None = None
    clear: bool = False
    faults: list[FaultSpec] = Field(default_factory=list)


@dataclass
class _ActiveFault:
    spec: FaultSpec
    remaining: int | None
    rng: random.Random

    def fires(self, endpoint: str, principal: str | None) -> bool:
        if not fnmatch.fnmatchcase(endpoint, self.spec.match):
            return False
        if self.spec.principal is not None and self.spec.principal != principal:
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True
        if self.spec.rate is not None:
            return self.rng.random() < self.spec.rate
        return True  # neither count nor rate: always


@dataclass
class Stats:
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    writes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_principal: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: {"requests": 0, "writes": 0})
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_requests": sum(self.requests.values()),
            "total_writes": sum(self.writes.values()),
            "requests": dict(self.requests),
            "writes": dict(self.writes),
            "faults": dict(self.faults),
            "by_principal": {k: dict(v) for k, v in self.by_principal.items()},
        }


class DropConnection(Exception):
    """Raised by a handler to make `DropMiddleware` cut the connection mid-answer."""


class SandboxControl:
    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.latency_s = 0.0
        self._faults: list[_ActiveFault] = []
        self.stats = Stats()
        # Bumped by reset(): a request still waiting (latency, timeout fault) from before a reset belongs
        # to the old world and is cut off instead of writing into the new one.
        self.generation = 0

    # -- admin -----------------------------------------------------------------------------
    def set_faults(self, body: FaultsBody) -> None:
        with self._lock:
            if body.clear:
                self._faults.clear()
            if body.latency_ms is not None:
                self.latency_s = body.latency_ms / 1000.0
            for spec in body.faults:
                self._faults.append(_ActiveFault(spec, spec.count, random.Random(spec.seed)))

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.latency_s = 0.0
            self.stats = Stats()
            self.generation += 1

    # -- per request -----------------------------------------------------------------------
    def count(self, endpoint: str, *, write: bool, principal: str | None) -> None:
        with self._lock:
            self.stats.requests[endpoint] += 1
            if write:
                self.stats.writes[endpoint] += 1
            if principal is not None:
                entry = self.stats.by_principal[principal]
                entry["requests"] += 1
                if write:
                    entry["writes"] += 1

    def count_write(self, endpoint: str, principal: str | None = None) -> None:
        """Count a write once it succeeded (for handlers that entered with count_write=False)."""
        with self._lock:
            self.stats.writes[endpoint] += 1
            if principal is not None:
                self.stats.by_principal[principal]["writes"] += 1

    def pick_fault(self, endpoint: str, principal: str | None) -> FaultSpec | None:
        with self._lock:
            for fault in self._faults:
                if fault.fires(endpoint, principal):
                    self.stats.faults[endpoint] += 1
                    return fault.spec
        return None

    async def enter(
        self, endpoint: str, *, write: bool = False, principal: str | None = None, count_write: bool = True
    ) -> FaultSpec | None:
        """Count the request, wait the configured latency, and return a fault to inject or None.

        A write that is answered by an injected fault did not happen, so it is not counted as a
        write; `count_write=False` lets a handler count the write itself once it succeeded.
        """
        generation = self.generation
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
            self._cut_if_reset(generation, endpoint)
        fault = self.pick_fault(endpoint, principal)
        self.count(endpoint, write=write and count_write and fault is None, principal=principal)
        if fault is not None:
            if fault.kind == "timeout":
                await asyncio.sleep(fault.delay_s)
                self._cut_if_reset(generation, endpoint)
                return None  # the client has normally given up by now; answer normally if not
            if fault.kind == "drop":
                raise DropConnection(endpoint)
        return fault

    def _cut_if_reset(self, generation: int, endpoint: str) -> None:
        if self.generation != generation:
            raise DropConnection(endpoint)


class DropMiddleware:
    """Pure ASGI middleware: on `DropConnection`, start an answer and abandon it half-way.

    uvicorn closes the transport when an app returns with an incomplete body, so the client sees
    a connection that broke mid-response (httpx: RemoteProtocolError), as with a real outage.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        try:
            await self.app(scope, receive, send)
        except DropConnection:
            if scope["type"] != "http":  # only an HTTP answer can be cut half-way
                raise
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})


def admin_router(
    control: SandboxControl,
    *,
    reset_state: Callable[[], None],
    seed_state: Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]],
) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "service": control.name}

    @router.post("/_sandbox/reset")
    async def reset() -> dict[str, Any]:
        reset_state()
        control.reset()
        return {"status": "reset", "service": control.name}

    @router.post("/_sandbox/seed")
    async def seed(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        result = seed_state(body)
        if asyncio.iscoroutine(result):
            result = await result
        return result  # type: ignore[return-value]

    @router.post("/_sandbox/faults")
    async def faults(body: FaultsBody) -> dict[str, Any]:
        control.set_faults(body)
        return {"status": "ok", "latency_ms": control.latency_s * 1000, "active": len(control._faults)}

    @router.get("/_sandbox/stats")
    async def stats() -> dict[str, Any]:
        return control.stats.as_dict()

    return router


def make_app(
    title: str, control: SandboxControl, *, reset_state: Callable[[], None], seed_state: Callable[[dict[str, Any]], Any]
) -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None)
    app.include_router(admin_router(control, reset_state=reset_state, seed_state=seed_state))
    app.add_middleware(DropMiddleware)
    return app
