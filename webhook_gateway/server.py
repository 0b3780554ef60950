"""How the gateway is served: uvicorn (httptools) with the limits uvicorn itself does not have.

uvicorn bounds idle keep-alive connections, but nothing else at the edge: a request head may take
forever to arrive, may be megabytes long with any number of fields, a body may stall half-way, and
every connection is accepted. `edge_protocol(limits)` is uvicorn's httptools protocol
with these added, per connection:

- the request head (request line and header fields) must arrive within `header_timeout_s` of its
  first byte (of the connection, for the first request) → 408, closed; a connection that sent
  nothing at all is closed without an answer;
- the head is at most `max_header_bytes` and `max_headers` fields → 431, closed;
- the body must arrive within `body_timeout_s` of the end of the head → 408 (if no answer was sent
  yet) and closed; the app sees a disconnect, the proxy audits the write as 408 `body_timeout`;
- beyond `max_connections` open connections, a request is answered 503 `too_many_connections`
  (Retry-After: 1) and its connection closed; the head timeout bounds how long such a connection
  can wait.

The deadlines are checked by one timer per server, twice a second, over the open connections: no
timer per request (the webhook path's throughput). Refusals use the gateway's error format
{"error", "message", "status", "request_id"}, as JSON with Connection: close.
Why uvicorn and not another server: granian bounds the head's time and size but has no body
timeout and no answer past its connection backpressure (it stops accepting); hypercorn's h11
parser costs the webhook path much of its throughput. Both would also take the tests' and
benches' in-process servers away.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, fields
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from include.settings import GatewaySettings

_HEAD, _BODY = "head", "body"
SWEEP_S = 0.5
LINGER_S = 2.0  # after a refusal: how long what the client still sends is read and dropped


@dataclass(frozen=True)
class EdgeLimits:
    """The edge limits of GatewaySettings (GATEWAY_*), where their defaults are written."""

    header_timeout_s: float
    body_timeout_s: float
    keep_alive_s: float
    max_header_bytes: int
    max_headers: int
    max_connections: int

    @classmethod
    def of(cls, gw: GatewaySettings) -> EdgeLimits:
        # every field is named as its setting
        return cls(**{f.name: getattr(gw, f.name) for f in fields(cls)})

    @classmethod
    def from_settings(cls, settings: Any) -> EdgeLimits:
        return cls.of(settings.gateway)

    @classmethod
    def defaults(cls) -> EdgeLimits:
        """The documented defaults, without reading the environment or .env."""
        return cls.of(GatewaySettings.model_construct())


def _refusal(
    status: int, reason: bytes, error: str, message: str, request_id: str | None, extra: tuple[bytes, ...] = ()
) -> bytes:
    body = json.dumps({"error": error, "message": message, "status": status, "request_id": request_id}).encode()
    head = [
        b"HTTP/1.1 %d %s" % (status, reason),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class _HeadTooLarge(Exception):
    """Raised in the parser's callback to stop parsing a head that passed a limit."""


class EdgeProtocol(HttpToolsProtocol):
    limits: EdgeLimits = EdgeLimits.defaults()
    over_capacity: Any = None  # the ASGI app answering 503 past max_connections (edge_protocol sets it)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase: str | None = _HEAD
        self._deadline = self.loop.time() + self.limits.header_timeout_s
        self._head_bytes = 0  # received since the request began, while its head is incomplete
        self._too_large = False
        self._discarding = False
        state = self.server_state
        if not getattr(state, "edge_sweeping", False):
            state.edge_sweeping = True  # type: ignore[attr-defined]
            self.loop.call_later(SWEEP_S, _sweep, self.loop, state)

    # -- the request head -----------------------------------------------------------------------
    # Per request only a few attribute writes here: the head's size and field count are checked
    # once it is complete (or, for a head still arriving, by the bytes received), not per field.
    def data_received(self, data: bytes) -> None:
        if self._discarding:  # refused: what still comes is read and dropped until the close
            return
        self._unset_keepalive_if_required()
        phase = self._phase
        if phase is None:  # a keep-alive connection's next request: its head's clock starts now
            self._phase = _HEAD
            self._deadline = self.loop.time() + self.limits.header_timeout_s
            self._head_bytes = len(data)
        elif phase == _HEAD:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn: the gateway serves no WebSocket (ws="none")
            self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._too_large:
                self._refuse_head()
            else:
                self.logger.info("invalid HTTP request received")  # never the bytes: client data
                self._close_with(400, b"Bad Request", "bad_request", "invalid HTTP request")
            return
        if self._phase == _HEAD and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head()  # a head still arriving, already over the limit

    def on_headers_complete(self) -> None:
        limits = self.limits
        # the bytes received for this request bound its head: count exactly only when they pass the limit
        if len(self.headers) > limits.max_headers or (
            self._head_bytes > limits.max_header_bytes and self._head_size() > limits.max_header_bytes
        ):
            self._too_large = True
            raise _HeadTooLarge  # stops the parser; data_received answers 431
        self._phase = _BODY
        self._deadline = self.loop.time() + limits.body_timeout_s
        if len(self.connections) > limits.max_connections:
            self.app = self.over_capacity  # its answer closes the connection
        super().on_headers_complete()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._phase = None
        super().on_message_complete()

    # -- refusals ---------------------------------------------------------------------------------
    def _close_with(self, status: int, reason: bytes, error: str, message: str, request_id: str | None = None) -> None:
        """Answer, then close gently: the client may still be sending (an 8 MB header), and closing
        with its bytes unread would reset the connection and destroy the answer before it is read.
        So: answer, end our side, discard what still comes for LINGER_S, then close."""
        self._phase = None
        if self.transport.is_closing() or self._discarding:
            return
        self._discarding = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # a request in progress: the app sees a
            state = cycle.scope.setdefault("state", {})  # disconnect and the reason, and sends nothing more
            state.setdefault("edge_refusal", (status, error if status != 408 else "body_timeout"))
            request_id = request_id or state.get("request_id")
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.write(_refusal(status, reason, error, message, request_id))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def _refuse_head(self) -> None:
        self._close_with(
            431,
            b"Request Header Fields Too Large",
            "headers_too_large",
            f"request head over {self.limits.max_header_bytes} bytes or {self.limits.max_headers} header fields",
        )

    def check_deadlines(self, now: float) -> None:
        """Called by the sweep: close what overran its phase (the head or the body)."""
        if self.transport.is_closing() or self._phase is None or now < self._deadline:
            return
        if self._phase == _HEAD:
            if self._head_bytes == 0 and self.cycle is None:  # connected, never sent a byte
                self._phase = None
                self.transport.close()
            else:
                self._close_with(
                    408,
                    b"Request Timeout",
                    "request_timeout",
                    f"request head not complete within {self.limits.header_timeout_s:g} s",
                )
            return
        cycle = self.cycle  # the body phase: the app is told the client is gone; answered if nobody did
        if cycle is None or cycle.response_started:
            if cycle is not None:
                cycle.disconnected = True
                cycle.message_event.set()
            self._phase = None
            self.transport.close()
            return
        self._close_with(
            408,
            b"Request Timeout",
            "request_timeout",
            f"request body not complete within {self.limits.body_timeout_s:g} s",
        )


def _over_capacity_app(limits: EdgeLimits) -> Any:
    body = json.dumps(
        {
            "error": "too_many_connections",
            "message": f"the gateway holds at most {limits.max_connections} connections; retry shortly",
            "status": 503,
            "request_id": None,
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]

    async def over_capacity(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return over_capacity


def _sweep(loop: asyncio.AbstractEventLoop, state: Any) -> None:
    if not state.connections:  # idle server: the next connection starts the sweep again
        state.edge_sweeping = False
        return
    now = loop.time()
    for conn in list(state.connections):
        if isinstance(conn, EdgeProtocol):
            conn.check_deadlines(now)
    loop.call_later(SWEEP_S, _sweep, loop, state)


def edge_protocol(limits: EdgeLimits) -> type[EdgeProtocol]:
    """The protocol class for uvicorn's `http=` with these limits."""
    return type(
        "GatewayEdgeProtocol",
        (EdgeProtocol,),
        {"limits": limits, "over_capacity": staticmethod(_over_capacity_app(limits))},
    )


def uvicorn_config(app: Any, settings: Any, **overrides: Any) -> uvicorn.Config:
    """The gateway's uvicorn configuration: the edge protocol, no server header, no access log
    (the gateway writes its own, escaped)."""
    limits = EdgeLimits.from_settings(settings)
    options: dict[str, Any] = dict(
        host=settings.gateway.host,
        port=settings.gateway.port,
        http=edge_protocol(limits),
        timeout_keep_alive=limits.keep_alive_s,
        access_log=False,
        log_level="warning",
        server_header=False,
        ws="none",
        backlog=max(128, limits.max_connections),
        lifespan="on",
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)
