"""Async twin of `AdvowareClient` for the gateway proxy: same settings, token cache, errors and gate.

Transport is aiohttp, not httpx: measured on this project's bench, httpx.AsyncClient spent ~2.4 ms
CPU per request in its connection pool against ~0.25 ms for aiohttp, and the proxy's throughput
is bounded by exactly that. The hot path reads the process-local token (`TokenCache.peek`, no
I/O); only a due token goes to Redis / the security gateway, in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from include.advoware.client import _Base
from include.advoware.errors import AdvowareError
from include.advoware.protocol import (
    Params,
    bearer,
    checked,
    log_answer,
    log_retry,
    renew_after,
    start,
    transport_error,
)


@dataclass(frozen=True)
class RawResponse:
    """Advoware's answer: status, headers (case-insensitive, as received) and the body, decompressed."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.content) if self.content.strip() else None


def aiohttp_error(exc: BaseException, method: str, endpoint: str) -> AdvowareError:
    return transport_error(
        exc,
        method,
        endpoint,
        timed_out=isinstance(exc, TimeoutError),
        unreachable=isinstance(exc, aiohttp.ClientConnectorError),
    )


class AsyncAdvowareClient(_Base):
    default_max_connections = 200

    def _open(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._token_lock = asyncio.Lock()
        t = self.settings.timeout_s
        self._timeout = aiohttp.ClientTimeout(total=t, connect=min(5.0, t))

    def _http(self) -> aiohttp.ClientSession:
        # created on first use, inside the running loop; one pooled keep-alive session per process.
        # aiohttp offers gzip/deflate upstream, so it must also undo them: Advoware behind IIS
        # compresses, and RawResponse.content is always the plain body.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30),
                timeout=self._timeout,
                auto_decompress=True,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._token_http.close()

    async def _token(self) -> str:
        if self._token_cache is not None and (tok := self._token_cache.peek()):
            return tok
        async with self._token_lock:
            return await asyncio.to_thread(lambda: self.token_cache.get())

    async def request(
        self,
        method: str,
        path: str,
        params: Params = None,
        json: Any = None,
        *,
        content: bytes | None = None,
        check: bool = True,
        retry: bool | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """As `AdvowareClient.request`; `content` sends an already encoded JSON body unchanged."""
        method, endpoint = start(self.settings, method, path)
        if content is None and json is not None:
            content = jsonlib.dumps(json).encode()

        async def attempt() -> RawResponse:
            return checked(await self._send(method, endpoint, path, params, content, timeout), check, method, endpoint)

        policy = self._policy(method, retry)  # the sync client's policy; its waits are asyncio.sleep
        if policy is None:
            return await attempt()
        return await policy.acall(attempt, before_sleep=log_retry(method, endpoint))

    async def _send(
        self, method: str, endpoint: str, path: str, params: Params, content: bytes | None, timeout: float | None
    ) -> RawResponse:
        url = self.url(path)
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = aiohttp.ClientTimeout(total=timeout, connect=min(5.0, timeout))
        if params:
            extra["params"] = [(k, str(v)) for k, v in (params.items() if hasattr(params, "items") else params)]
        session = self._http()
        token = await self._token()
        started = time.perf_counter()
        try:
            resp = await self._once(session, method, url, token, content, extra)
            if renew_after(resp, method, endpoint):
                await asyncio.to_thread(self.token_cache.invalidate, token)
                resp = await self._once(session, method, url, await self._token(), content, extra)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise aiohttp_error(exc, method, endpoint) from None
        log_answer(resp, method, endpoint, started)
        return resp

    @staticmethod
    async def _once(
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        token: str,
        content: bytes | None,
        extra: dict[str, Any],
    ) -> RawResponse:
        headers = bearer(token)
        if content is not None:
            headers["Content-Type"] = "application/json"
        async with session.request(method, url, data=content, headers=headers, **extra) as resp:
            body = await resp.read()
            return RawResponse(resp.status, resp.headers, body)
