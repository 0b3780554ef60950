"""One Advoware sandbox's state (store, token gateway, faults and stats, compression), on `app.state`,
and the typed dependency its routes take it by; `guard` is every API route's first step."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response

from sandbox.advoware.gateway import Credentials, TokenGateway
from sandbox.advoware.store import AdvowareStore, InvalidRecord
from sandbox.advoware.wire import error, fault_response
from sandbox.common import FaultSpec, SandboxControl
from sandbox.compression import MODES, Mode, Switch


def default_compression() -> Mode:
    mode = os.environ.get("SANDBOX_ADVOWARE_COMPRESS", "off")
    if mode not in MODES:
        raise ValueError(f"SANDBOX_ADVOWARE_COMPRESS must be one of {', '.join(MODES)}")
    return mode


@dataclass
class AdvowareSandbox:
    control: SandboxControl = field(default_factory=lambda: SandboxControl("advoware"))
    gateway: TokenGateway = field(default_factory=lambda: TokenGateway(Credentials.from_env()))
    store: AdvowareStore = field(default_factory=AdvowareStore)
    default_compress: Mode = field(default_factory=default_compression)
    compression: Switch = field(init=False)

    def __post_init__(self) -> None:
        self.compression = Switch(self.default_compress)

    def reset(self) -> None:
        self.store.reset()
        self.gateway.reset()
        self.compression.mode = self.default_compress

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"status": "seeded", **self.store.seed(body)}
        except (InvalidRecord, ValueError, TypeError, AttributeError) as exc:
            raise HTTPException(400, f"bad seed body: {exc}") from None

    async def guard(
        self, request: Request, endpoint: str, *, write: bool = False, principal: str | None = None
    ) -> tuple[Response | None, FaultSpec | None]:
        """Bearer check, then stats/latency/faults. Answers (error response or None, fault)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.gateway.is_valid(token.strip()):
            self.control.count(endpoint, write=False, principal=principal)
            return error(401, "unauthorized", "missing, unknown or expired bearer token"), None
        fault = await self.control.enter(endpoint, write=write, principal=principal, count_write=False)
        if fault is not None and fault.kind == "status":
            return fault_response(fault), fault
        return None, fault

    def count_write(self, endpoint: str, principal: str | None) -> None:
        # SandboxControl.enter(count_write=False) left the write uncounted: count it now it succeeded.
        self.control.count_write(endpoint, principal)


def empty(fault: FaultSpec | None) -> bool:
    return fault is not None and fault.kind == "empty_list"


async def get_sandbox(request: Request) -> AdvowareSandbox:
    sandbox: AdvowareSandbox = request.app.state.advoware
    return sandbox


SandboxDep = Annotated[AdvowareSandbox, Depends(get_sandbox)]
