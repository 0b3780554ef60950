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
import redis
from multidict import CIMultiDictProxy

from include.advoware.client import (
    Params,
    _Base,
    check_write,
    endpoint_of,
    error_for_response,
    log,
    log_retry,
)
from include.advoware.errors import AdvowareConnectionError, AdvowareError, AdvowareTimeout
from include.settings import AdvowareSettings


@dataclass(frozen=True)
class RawResponse:
    """Advoware's answer: status, headers (case-insensitive, as received) and the body, decompressed."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.content) if self.content.strip() else None


def transport_error(exc: BaseException, method: str, endpoint: str) -> AdvowareError:
    kind = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return AdvowareTimeout(
            f"Advoware {method} {endpoint}: no answer in time ({kind})", method=method, endpoint=endpoint
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return AdvowareConnectionError(
            f"Advoware {method} {endpoint}: unreachable ({kind})", method=method, endpoint=endpoint
        )
    return AdvowareConnectionError(
        f"Advoware {method} {endpoint}: connection dropped ({kind})", method=method, endpoint=endpoint
    )


class AsyncAdvowareClient(_Base):
    def __init__(
        self,
        settings: AdvowareSettings | None = None,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        renew_before_s: float = 60.0,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 30.0,
        max_connections: int = 200,
    ) -> None:
        super().__init__(
            settings,
            redis_url=redis_url,
            redis_client=redis_client,
            renew_before_s=renew_before_s,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
        )
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
        method = method.upper()
        endpoint = endpoint_of(path)
        check_write(self.settings, method, endpoint)
        if content is None and json is not None:
            content = jsonlib.dumps(json).encode()

        async def attempt() -> RawResponse:
            resp = await self._send(method, path, params, content, timeout)
            if check and resp.status_code >= 400:
                raise error_for_response(resp, method, endpoint)
            return resp

        policy = self._policy(method, retry)  # the sync client's policy; its waits are asyncio.sleep
        if policy is None:
            return await attempt()
        return await policy.acall(attempt, before_sleep=log_retry(method, endpoint))

    async def _send(
        self, method: str, path: str, params: Params, content: bytes | None, timeout: float | None
    ) -> RawResponse:
        endpoint = endpoint_of(path)
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
            if resp.status_code == 401:
                log.info("advoware %s %s answered 401: renewing the token once", method, endpoint)
                await asyncio.to_thread(self.token_cache.invalidate, token)
                token = await self._token()
                resp = await self._once(session, method, url, token, content, extra)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, method, endpoint) from None
        log.debug(
            "advoware %s %s %d %.1fms",
            method,
            endpoint,
            resp.status_code,
            (time.perf_counter() - started) * 1000,
        )
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
        headers = {"Authorization": f"Bearer {token}"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        async with session.request(method, url, data=content, headers=headers, **extra) as resp:
            body = await resp.read()
            return RawResponse(resp.status, resp.headers, body)
