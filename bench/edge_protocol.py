"""Bench: what the gateway's edge protocol (webhook_gateway/server.py) costs per request, against
uvicorn's own httptools protocol, in one process.

Both protocols are fed the same signed webhook request (the bench/webhooks.py shape, 8 header
fields, ~300-byte body) over a fake transport, one request after the other on one keep-alive
connection, answered by the same minimal ASGI app; rounds alternate A/B and the figure is the
minimum per-request time of the rounds (the least disturbed by other work on a shared machine).
The difference is the edge's cost on every request; compare it with the gateway's CPU per webhook
(bench/webhooks.py, server_cpu_us_per_request). Prints figures and, last, one JSON line.

    .venv/bin/python -m bench.edge_protocol [--requests 20000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bench.webhooks import PATH, make_delivery
from webhook_gateway.server import EdgeLimits, edge_protocol


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...


ANSWER = b'{"accepted":3,"duplicates":0,"rejected":[]}'
ANSWER_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body and answers a small JSON, as the webhook route does (without its work)."""
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": ANSWER_HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def request_bytes() -> bytes:
    import random

    body, headers = make_delivery(random.Random(1))
    head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "User-Agent: EspoCRM\r\nAccept: */*\r\nX-Request-ID: bench-1\r\nConnection: keep-alive\r\n\r\n"
    return head.encode() + body


async def per_request_us(protocol_class: type[HttpToolsProtocol], data: bytes, n: int) -> float:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    config.load()
    state = ServerState()
    protocol = protocol_class(config=config, server_state=state, app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    started = time.perf_counter()
    for _ in range(n):
        protocol.data_received(data)
        while state.tasks:  # the request's ASGI task: run it to its end
            await asyncio.gather(*state.tasks)
    took = time.perf_counter() - started
    protocol.connection_lost(None)
    assert transport.written > 0
    return took / n * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    data = request_bytes()
    edge = edge_protocol(EdgeLimits.defaults())
    load_before = os.getloadavg()

    async def measure() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"uvicorn": [], "edge": []}
        await per_request_us(edge, data, 2000)  # warm-up
        for _ in range(args.rounds):
            out["uvicorn"].append(await per_request_us(HttpToolsProtocol, data, args.requests))
            out["edge"].append(await per_request_us(edge, data, args.requests))
        return out

    rounds = uvloop.run(measure())  # the gateway's loop (uvicorn picks uvloop when installed)
    best = {k: min(v) for k, v in rounds.items()}
    result = {
        "bench": "edge_protocol",
        "request_bytes": len(data),
        "requests_per_round": args.requests,
        "uvicorn_us_min": round(best["uvicorn"], 2),
        "edge_us_min": round(best["edge"], 2),
        "added_us_min": round(best["edge"] - best["uvicorn"], 2),
        "uvicorn_us_median": round(statistics.median(rounds["uvicorn"]), 2),
        "edge_us_median": round(statistics.median(rounds["edge"]), 2),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"uvicorn httptools protocol: {best['uvicorn']:.2f} us per request (min of {args.rounds} rounds), "
        f"edge protocol: {best['edge']:.2f} us; added {result['added_us_min']} us"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
