"""Response compression as a switch of a sandbox (IIS compresses Advoware's answers when asked).

`Compression` is ASGI middleware: while the switch's `mode` is "gzip" or "deflate" and the request's
Accept-Encoding offers it, every answer under `prefix` is sent compressed with Content-Encoding
(buffered, then compressed whole). An answer the app abandons half-way (a `drop` fault) goes out
as it was, uncompressed and cut.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["off", "gzip", "deflate"]
MODES: tuple[Mode, ...] = ("off", "gzip", "deflate")


@dataclass
class Switch:
    """The sandbox's current setting, shared by the admin route and the middleware."""

    mode: Mode = "off"


def _offered(scope: dict[str, Any], mode: str) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"accept-encoding":
            return mode.encode() in {part.split(b";")[0].strip().lower() for part in value.split(b",")}
    return False


class Compression:
    def __init__(self, app: Any, switch: Switch, prefix: str = "/api/") -> None:
        self.app, self.switch, self.prefix = app, switch, prefix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        mode = self.switch.mode
        if (
            scope["type"] != "http"
            or mode == "off"
            or not scope["path"].startswith(self.prefix)
            or not _offered(scope, mode)
        ):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        complete = False

        async def buffer(message: dict[str, Any]) -> None:
            nonlocal start, complete
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)

        try:
            await self.app(scope, receive, buffer)
        finally:
            if start is not None:
                await self._flush(send, start, chunks, complete, mode)

    @staticmethod
    async def _flush(send: Any, start: dict[str, Any], chunks: list[bytes], complete: bool, mode: str) -> None:
        body = b"".join(chunks)
        if not complete:  # abandoned answer: pass it on as it came, cut
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            return
        packed = gzip.compress(body) if mode == "gzip" else zlib.compress(body)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length",)]
        headers += [
            (b"content-encoding", mode.encode()),
            (b"content-length", str(len(packed)).encode()),
            (b"vary", b"Accept-Encoding"),
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": packed})
