"""Advoware REST client (sync): token management, timeouts, retries, write protection, typed calls.

The async twin (`include.advoware.async_client`) shares everything here but the transport; what
both decide alike (paths, write gate, retries, token renewal, errors) is `include.advoware.protocol`.

Retry policy (the shared one of `include.retry`): 429, 5xx (503 honouring `Retry-After`), timeouts
and dropped connections are retried with exponential backoff and jitter for GET, PUT and DELETE. A
POST is never retried unless its caller passes `retry=True` (it may have created something before
the answer got lost). A 401 from the API renews the token once and repeats the call, for every
method: the request was rejected before anything happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, ClassVar

import httpx
import redis

from include.advoware.discovery import Endpoints, discover
from include.advoware.errors import AdvowareAuthError, AdvowareError
from include.advoware.protocol import (
    API_PREFIX,
    RETRYABLE_METHODS,
    Params,
    as_date,
    bearer,
    checked,
    error_for_response,
    log_answer,
    log_retry,
    parse_token,
    renew_after,
    retry_policy,
    start,
    transport_error,
)
from include.advoware.signing import TOKEN_PATH, token_request_body
from include.advoware.token_cache import Token, TokenCache, cache_key
from include.retry import RetryPolicy
from include.settings import AdvowareSettings


def httpx_error(exc: httpx.HTTPError, method: str, endpoint: str) -> AdvowareError:
    return transport_error(
        exc,
        method,
        endpoint,
        timed_out=isinstance(exc, httpx.TimeoutException),
        unreachable=isinstance(exc, httpx.ConnectError),
    )


def fetch_token(http: httpx.Client, settings: AdvowareSettings, token_base: str, renew_before_s: float) -> Token:
    """POST the signed token request to the security gateway (never logged: it carries the password)."""
    try:
        resp = http.post(token_base + TOKEN_PATH, json=token_request_body(settings))
    except httpx.HTTPError as exc:
        raise httpx_error(exc, "POST", "Token") from None
    if resp.status_code in (400, 401, 403):
        raise AdvowareAuthError(
            f"Advoware security gateway rejected the token request ({resp.status_code}); "
            "check user, password, app id and API key",
            method="POST",
            endpoint="Token",
            status=resp.status_code,
        )
    if resp.status_code != 200:
        raise error_for_response(resp, "POST", "Token")
    return parse_token(resp.json(), renew_before_s)


def make_redis(redis_url: str | None) -> redis.Redis | None:
    if not redis_url:
        return None
    return redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)


def http_timeout(settings: AdvowareSettings) -> httpx.Timeout:
    return httpx.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s))


def body_of(resp: httpx.Response) -> Any:
    return resp.json() if resp.content.strip() else None


class _Base:
    """Configuration, endpoints and the token cache: identical for both clients. A client opens its
    own transport for the API calls in `_open`, with at most `max_connections` (None: its default)."""

    default_max_connections: ClassVar[int]

    def __init__(
        self,
        settings: AdvowareSettings | None = None,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        renew_before_s: float = 60.0,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 30.0,
        max_connections: int | None = None,
    ) -> None:
        self.settings = settings or AdvowareSettings()
        self._redis = redis_client if redis_client is not None else make_redis(redis_url)
        self._renew_before_s = renew_before_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._endpoints: Endpoints | None = None
        self._token_cache: TokenCache | None = None
        self._setup_lock = threading.Lock()
        self._token_http = httpx.Client(timeout=http_timeout(self.settings))
        self._open(self.default_max_connections if max_connections is None else max_connections)

    def _open(self, max_connections: int) -> None:
        raise NotImplementedError

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            with self._setup_lock:
                if self._endpoints is None:
                    self._endpoints = discover(self.settings, self._token_http)
        return self._endpoints

    @property
    def token_cache(self) -> TokenCache:
        if self._token_cache is None:
            ep = self.endpoints
            s = self.settings
            with self._setup_lock:
                if self._token_cache is None:
                    key = cache_key(ep.token_base, s.kanzlei, s.database, s.username, s.app_id)
                    self._token_cache = TokenCache(
                        lambda: fetch_token(self._token_http, s, ep.token_base, self._renew_before_s),
                        redis_client=self._redis,
                        key=key,
                        lock_timeout_s=max(s.timeout_s, 5.0) + 5.0,
                    )
        return self._token_cache

    def url(self, path: str) -> str:
        return self.endpoints.api_base + API_PREFIX + path.lstrip("/")

    def _policy(self, method: str, retry: bool | None) -> RetryPolicy | None:
        """The retry policy of one call, None when it is sent once (a POST unless its caller allows)."""
        allowed = (method in RETRYABLE_METHODS) if retry is None else retry
        if not allowed or self.settings.max_retries <= 0:
            return None
        return retry_policy(self.settings.max_retries, self._backoff_base_s, self._backoff_max_s)


# -- the sync client -------------------------------------------------------------------------------
class AdvowareClient(_Base):
    """Sync client for DAG tasks and scripts. Thread-safe; share one per process."""

    default_max_connections = 20

    def _open(self, max_connections: int) -> None:
        self._http = httpx.Client(
            timeout=http_timeout(self.settings), limits=httpx.Limits(max_connections=max_connections)
        )

    def close(self) -> None:
        self._http.close()
        self._token_http.close()

    def __enter__(self) -> AdvowareClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- generic -----------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        params: Params = None,
        json: Any = None,
        *,
        check: bool = True,
        retry: bool | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Call `<api base>/api/v1/advonet/<path>`.

        check=True raises the typed error for an error status; check=False returns any answer (the
        proxy passes it on) and raises only for timeouts and connection failures.
        retry=None retries GET/PUT/DELETE only; True/False overrides (a POST's caller decides).
        """
        method, endpoint = start(self.settings, method, path)

        def attempt() -> httpx.Response:
            return checked(self._send(method, endpoint, path, params, json, timeout), check, method, endpoint)

        policy = self._policy(method, retry)
        return attempt() if policy is None else policy.call(attempt, before_sleep=log_retry(method, endpoint))

    def _send(
        self, method: str, endpoint: str, path: str, params: Params, json: Any, timeout: float | None
    ) -> httpx.Response:
        url = self.url(path)
        call_timeout = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout

        def send(token: str) -> httpx.Response:
            return self._http.request(
                method, url, params=params, json=json, headers=bearer(token), timeout=call_timeout
            )

        cache = self.token_cache
        token = cache.get()
        started = time.perf_counter()
        try:
            resp = send(token)
            if renew_after(resp, method, endpoint):
                cache.invalidate(token)
                resp = send(cache.get())
        except httpx.HTTPError as exc:
            raise httpx_error(exc, method, endpoint) from None
        log_answer(resp, method, endpoint, started)
        return resp

    def get_json(self, path: str, params: Params = None) -> Any:
        return body_of(self.request("GET", path, params))

    # -- appointments (Termine) --------------------------------------------------------------------
    def list_termine(self, kuerzel: str, from_: date | datetime | str, to: date | datetime | str) -> list[dict]:
        return self.get_json("Termine", {"kuerzel": kuerzel, "from": as_date(from_), "to": as_date(to)}) or []

    def get_termin(self, frnr: int) -> dict | None:
        items = self.get_json("Termine", {"frnr": frnr}) or []
        return items[0] if items else None

    def create_termin(self, termin: Mapping[str, Any], *, retry: bool = False) -> dict:
        return body_of(self.request("POST", "Termine", json=dict(termin), retry=retry))

    def update_termin(self, frnr: int, termin: Mapping[str, Any]) -> dict | None:
        return body_of(self.request("PUT", "Termine", {"frnr": frnr}, json=dict(termin)))

    def delete_termin(self, frnr: int) -> None:
        self.request("DELETE", "Termine", {"frnr": frnr})

    # -- employees (Mitarbeiter) -------------------------------------------------------------------
    def list_mitarbeiter(self) -> list[dict]:
        return self.get_json("Mitarbeiter") or []

    # -- parties (Beteiligte) and their communications ---------------------------------------------
    def list_beteiligte(self, params: Params = None) -> list[dict]:
        return self.get_json("Beteiligte", params) or []

    def get_beteiligter(self, bet_nr: int) -> dict:
        return self.get_json(f"Beteiligte/{int(bet_nr)}")

    def create_beteiligter(self, data: Mapping[str, Any], *, retry: bool = False) -> dict:
        return body_of(self.request("POST", "Beteiligte", json=dict(data), retry=retry))

    def update_beteiligter(self, bet_nr: int, data: Mapping[str, Any]) -> dict | None:
        """PUT with the record's `rowId`; a stale one raises AdvowareConflict (409)."""
        return body_of(self.request("PUT", f"Beteiligte/{int(bet_nr)}", json=dict(data)))

    def delete_beteiligter(self, bet_nr: int) -> None:
        self.request("DELETE", f"Beteiligte/{int(bet_nr)}")

    def list_kommunikationen(self, bet_nr: int) -> list[dict]:
        return self.get_json(f"Beteiligte/{int(bet_nr)}/Kommunikationen") or []

    def create_kommunikation(self, bet_nr: int, data: Mapping[str, Any], *, retry: bool = False) -> dict:
        return body_of(self.request("POST", f"Beteiligte/{int(bet_nr)}/Kommunikationen", json=dict(data), retry=retry))

    def update_kommunikation(self, bet_nr: int, komm_id: int, data: Mapping[str, Any]) -> dict | None:
        """`kommKz` is read-only on PUT in Advoware; callers leave it unchanged."""
        return body_of(self.request("PUT", f"Beteiligte/{int(bet_nr)}/Kommunikationen/{int(komm_id)}", json=dict(data)))

    def delete_kommunikation(self, bet_nr: int, komm_id: int) -> None:
        """Production Advoware answers 403 (AdvowareAuthError): callers blank the entry instead."""
        self.request("DELETE", f"Beteiligte/{int(bet_nr)}/Kommunikationen/{int(komm_id)}")
