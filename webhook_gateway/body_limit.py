"""Request bodies capped per route, before anything parses them; JSON with the nesting limit.

`limited_body_route(n)` is a FastAPI route class: a declared Content-Length over `n` is a 413 at
once, a streamed body is cut off (413) as soon as it passes `n`, and the route's JSON is decoded
by `json_body.decode` (a precise 400 for nesting, instead of a RecursionError). The 413 carries
`limit`; the request never reaches the endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from webhook_gateway.json_body import BadJson, decode


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, detail={"error": "body_too_large", "message": f"body over {limit} bytes", "limit": limit})


class _LimitedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = decode(await self.body())
            except BadJson as exc:
                raise HTTPException(400, detail={"error": "bad_body", "message": str(exc)}) from None
        return self._json


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise too_large(limit)
        return message

    return counted


def limited_body_route(limit: int) -> type[APIRoute]:
    class LimitedBodyRoute(APIRoute):
        max_body_bytes = limit

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise too_large(limit)
                return await handler(_LimitedRequest(request.scope, _counting(request.receive, limit)))

            return limited

    return LimitedBodyRoute
