"""The async twin of `AirflowApi` for the gateway's request path: trigger a run, read a run.

The sync client repeats a failed POST with `time.sleep` between attempts; run in a worker thread,
twelve callers waiting on a down Airflow held every thread of the default pool, and a proxy write
(token renewal, audit) waited 11 s behind them (measured). Here the same policy (include.retry) waits
with `asyncio.sleep`, so a caller waiting on Airflow holds no thread, and `deadline_s` bounds the
whole call (every attempt, every wait): past it the caller gets TimeoutError and answers 503.
"""

from __future__ import annotations

import asyncio
from typing import Any, Unpack

import httpx

from include.airflow_api import (
    AirflowApiError,
    ClientOptions,
    ServerError,
    TriggerResult,
    _AirflowClient,
    raise_for_5xx,
    run_body,
    trigger_result,
)


class AsyncAirflowApi(_AirflowClient):
    """One instance per process (the token is shared); use from one event loop."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        deadline_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(base_url, username, password, options)
        self.deadline_s = deadline_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=min(self.timeout_s, deadline_s), transport=transport
        )
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Any, deadline_s: float = 15.0) -> AsyncAirflowApi:
        a = settings.airflow_api
        return cls(a.url, a.username, a.password.get_secret_value(), timeout_s=a.timeout_s, deadline_s=deadline_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _bearer(self, *, renew: bool = False) -> str:
        async with self._lock:
            token = self._current_token(renew)
            if token is None:
                token = self._accept_login(await self._http.post("/auth/token", json=self._credentials()))
            return token

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated call; on 401 the token is renewed once and the call repeated."""
        r = await self._http.request(
            method, path, headers={"Authorization": f"Bearer {await self._bearer()}"}, **kwargs
        )
        if r.status_code == 401:
            renewed = await self._bearer(renew=True)
            r = await self._http.request(method, path, headers={"Authorization": f"Bearer {renewed}"}, **kwargs)
        return r

    async def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, dag_run_id: str | None = None, note: str | None = None
    ) -> TriggerResult:
        """As `AirflowApi.trigger`, within `deadline_s` (TimeoutError past it)."""
        body = run_body(conf, dag_run_id, note)
        async with asyncio.timeout(self.deadline_s):
            r = await self._post_with_retries(f"/api/v2/dags/{dag_id}/dagRuns", body)
        return trigger_result(dag_id, body, r)

    async def _post_with_retries(self, path: str, body: dict[str, Any]) -> httpx.Response:
        async def attempt() -> httpx.Response:
            return raise_for_5xx(await self.request("POST", path, json=body))

        try:
            return await self._trigger_policy.acall(attempt)
        except ServerError as exc:
            return exc.response

    async def get_run(self, dag_id: str, dag_run_id: str) -> dict[str, Any]:
        async with asyncio.timeout(self.deadline_s):
            r = await self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}")
        if r.status_code != 200:
            raise AirflowApiError(f"get run {dag_run_id} failed: HTTP {r.status_code}", r.status_code)
        return r.json()
