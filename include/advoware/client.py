"""Advoware REST client (sync): token management, timeouts, retries, write protection, typed calls.

The async twin (`include.advoware.async_client`) shares everything here but the transport.

Retry policy (the shared one of `include.retry`): 429, 5xx (503 honouring `Retry-After`), timeouts
and dropped connections are retried with exponential backoff and jitter for GET, PUT and DELETE. A
POST is never retried unless its caller passes `retry=True` (it may have created something before
the answer got lost). A 401 from the API renews the token once and repeats the call, for every
method: the request was rejected before anything happened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Protocol

import httpx
import redis

from include.advoware.discovery import Endpoints, discover
from include.advoware.errors import (
    AdvowareAuthError,
    AdvowareConnectionError,
    AdvowareError,
    AdvowareRateLimited,
    AdvowareTimeout,
    AdvowareUnavailable,
    WriteProtectedError,
    error_for_status,
)
from include.advoware.signing import TOKEN_PATH, token_request_body
from include.advoware.token_cache import Token, TokenCache, cache_key
from include.retry import RetryPolicy, RetryState, failure_of, next_wait_of, retry_after_of
from include.settings import AdvowareSettings

log = logging.getLogger("include.advoware")

API_PREFIX = "/api/v1/advonet/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
Params = Mapping[str, Any] | list[tuple[str, Any]] | None


# -- pieces shared by the sync and the async client ----------------------------------------------
def endpoint_of(path: str) -> str:
    """The resource path named in logs and errors: no query string (it may carry ids of clients)."""
    return path.split("?", 1)[0].strip("/")


def check_write(settings: AdvowareSettings, method: str, endpoint: str) -> None:
    if settings.write_protection and method in WRITE_METHODS:
        raise WriteProtectedError(
            f"Advoware write protection is on (ADVOWARE_WRITE_PROTECTION=true): {method} {endpoint} was not sent",
            method=method,
            endpoint=endpoint,
        )


class Answer(Protocol):
    """What an error is made from: an httpx.Response or the async client's RawResponse."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> object: ...  # read by retry_after_of only


def error_for_response(resp: Answer, method: str, endpoint: str) -> AdvowareError:
    return error_for_status(method, endpoint, resp.status_code, retry_after_of(resp))


def transport_error(exc: httpx.HTTPError, method: str, endpoint: str) -> AdvowareError:
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return AdvowareTimeout(
            f"Advoware {method} {endpoint}: no answer in time ({kind})", method=method, endpoint=endpoint
        )
    if isinstance(exc, httpx.ConnectError):
        return AdvowareConnectionError(
            f"Advoware {method} {endpoint}: unreachable ({kind})", method=method, endpoint=endpoint
        )
    return AdvowareConnectionError(
        f"Advoware {method} {endpoint}: connection dropped ({kind})", method=method, endpoint=endpoint
    )


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, AdvowareRateLimited | AdvowareUnavailable)


def retry_policy(max_retries: int, base_s: float, max_s: float) -> RetryPolicy:
    """The client's policy (include/retry.py): ADVOWARE_MAX_RETRIES retries after the first attempt,
    waits base·2^(n-1)·uniform(1, 2), at most `max_s`, at least a Retry-After (capped as well)."""
    return RetryPolicy(
        attempts=max(max_retries, 0) + 1, base_s=base_s, max_s=max_s, jitter=(1.0, 2.0), retryable=retryable
    )


def log_retry(method: str, endpoint: str):  # -> the policy's before_sleep callback
    def _log(state: RetryState) -> None:
        exc = failure_of(state)
        status = getattr(exc, "status", None)
        wait = next_wait_of(state)
        log.warning(
            "advoware %s %s failed (%s%s), attempt %d, retrying in %.2fs",
            method,
            endpoint,
            type(exc).__name__,
            f" {status}" if status else "",
            state.attempt_number,
            wait,
        )

    return _log


def parse_token(data: Mapping[str, Any], renew_before_s: float) -> Token:
    value = data.get("access_token") or data.get("token")
    if not value:
        raise AdvowareAuthError("Advoware token answer carries no access_token", method="POST", endpoint="Token")
    if data.get("expires_in") is not None:
        lifetime = float(data["expires_in"])
    elif data.get("expiration_utc"):
        exp = datetime.fromisoformat(str(data["expiration_utc"]).replace("Z", "+00:00"))
        if exp.tzinfo is None:
            exp = exp.replace(tzinfo=UTC)
        lifetime = (exp - datetime.now(UTC)).total_seconds()
    else:
        lifetime = 3600.0
    return Token.issued(str(value), lifetime, renew_before_s)


def fetch_token(http: httpx.Client, settings: AdvowareSettings, token_base: str, renew_before_s: float) -> Token:
    """POST the signed token request to the security gateway (never logged: it carries the password)."""
    try:
        resp = http.post(token_base + TOKEN_PATH, json=token_request_body(settings))
    except httpx.HTTPError as exc:
        raise transport_error(exc, "POST", "Token") from None
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


def as_date(value: date | datetime | str) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, date | datetime) else str(value)


def body_of(resp: httpx.Response) -> Any:
    return resp.json() if resp.content.strip() else None


class _Base:
    """Configuration, endpoints and the token cache: identical for both clients."""

    def __init__(
        self,
        settings: AdvowareSettings | None,
        *,
        redis_url: str | None,
        redis_client: redis.Redis | None,
        renew_before_s: float,
        backoff_base_s: float,
        backoff_max_s: float,
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

    def __init__(
        self,
        settings: AdvowareSettings | None = None,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        renew_before_s: float = 60.0,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 30.0,
        max_connections: int = 20,
    ) -> None:
        super().__init__(
            settings,
            redis_url=redis_url,
            redis_client=redis_client,
            renew_before_s=renew_before_s,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
        )
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
        method = method.upper()
        endpoint = endpoint_of(path)
        check_write(self.settings, method, endpoint)  # before anything, the token request included

        def attempt() -> httpx.Response:
            resp = self._send(method, path, params, json, timeout)
            if check and resp.status_code >= 400:
                raise error_for_response(resp, method, endpoint)
            return resp

        policy = self._policy(method, retry)
        return attempt() if policy is None else policy.call(attempt, before_sleep=log_retry(method, endpoint))

    def _send(self, method: str, path: str, params: Params, json: Any, timeout: float | None) -> httpx.Response:
        endpoint = endpoint_of(path)
        url = self.url(path)
        call_timeout = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        cache = self.token_cache
        token = cache.get()
        started = time.perf_counter()
        try:
            resp = self._http.request(
                method,
                url,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
                timeout=call_timeout,
            )
            if resp.status_code == 401:
                log.info("advoware %s %s answered 401: renewing the token once", method, endpoint)
                cache.invalidate(token)
                token = cache.get()
                resp = self._http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=call_timeout,
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, method, endpoint) from None
        log.debug(
            "advoware %s %s %d %.1fms",
            method,
            endpoint,
            resp.status_code,
            (time.perf_counter() - started) * 1000,
        )
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
