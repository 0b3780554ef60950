"""Synchronous EspoCRM REST client (API key auth), the same against the sandbox and a real EspoCRM.

Retries: GET/PUT/PATCH/DELETE are retried with exponential backoff and jitter (the shared policy of
`include.retry`) on 429, 5xx and transport errors, honouring `Retry-After`. POST is not idempotent,
so it is retried only when the request surely never reached EspoCRM (connection refused / connect
timeout) or was refused with 429. Two consequences of retrying are resolved here, because the first
attempt may have landed even though its answer was lost: an update whose retry answers 409 is a
success if the record already holds our values; a delete whose retry answers 404 is a success.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import httpx

from include.espocrm.errors import (
    ConflictError,
    EspoCrmError,
    NotFoundError,
    TransientError,
    UnavailableError,
    error_for,
)
from include.retry import RetryPolicy, RetryState, failure_of, retry_after_of

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 200  # EspoCRM refuses a larger maxSize
_IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)  # the request never reached the server

Where = Mapping[str, Any] | builtins.list[Mapping[str, Any]]


class ListQuery(TypedDict, total=False):
    """The keywords of `EspoCrmClient.list_page` but the offset, which `iter_list` and `list` pass on."""

    where: Where | None
    select: builtins.list[str] | None
    max_size: int
    order_by: str | None
    order: str | None


def api_root(base_url: str) -> str:
    """`https://crm.example.com` or `.../api/v1` both give `.../api/v1/`."""
    root = base_url.rstrip("/")
    if not root.endswith("/api/v1"):
        root += "/api/v1"
    return root + "/"


def _flatten(prefix: str, value: Any, out: builtins.list[tuple[str, str]]) -> None:
    """PHP-style query keys (where[0][type]=equals), the form every EspoCRM version understands."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}[{key}]", sub, out)
    elif isinstance(value, (builtins.list, tuple)):
        for i, sub in enumerate(value):
            _flatten(f"{prefix}[{i}]", sub, out)
    elif isinstance(value, bool):
        out.append((prefix, "true" if value else "false"))
    elif value is None:
        out.append((prefix, ""))
    else:
        out.append((prefix, str(value)))


def where_params(where: Where | None) -> builtins.list[tuple[str, str]]:
    """A dict {attribute: value} means equals (None: isNull); a list is passed as EspoCRM clauses."""
    if not where:
        return []
    if isinstance(where, Mapping):
        clauses: builtins.list[Mapping[str, Any]] = [
            {"type": "isNull", "attribute": k} if v is None else {"type": "equals", "attribute": k, "value": v}
            for k, v in where.items()
        ]
    else:
        clauses = builtins.list(where)
    out: builtins.list[tuple[str, str]] = []
    _flatten("where", clauses, out)
    return out


class EspoCrmClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout_s: float = 30.0,
        *,
        max_retries: int = 4,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        entity: str = "CBeteiligte",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("EspoCRM API key is empty")
        self.base_url = api_root(base_url)
        self.entity = entity  # the firm's party entity, for callers that do not name one
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            headers={"X-Api-Key": api_key, "Accept": "application/json"},
        )

    @classmethod
    def from_settings(cls, settings: Any = None, **kwargs: Any) -> EspoCrmClient:
        from include.settings import EspoCrmSettings

        s = settings or EspoCrmSettings()
        return cls(s.base_url, s.api_key.get_secret_value(), s.timeout_s, entity=s.entity, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EspoCrmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------
    def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            err = UnavailableError(method, "/" + path, None, type(exc).__name__)
            err.not_sent = isinstance(exc, _NOT_SENT)
            raise err from exc
        if response.status_code >= 400:
            data: Any = None
            if response.content:
                try:
                    data = response.json()
                except ValueError:
                    data = None
            reason = response.headers.get("x-status-reason", "")[:200]
            failure = error_for(method, "/" + path, response.status_code, reason, data)
            failure.retry_after = retry_after_of(response)
            raise failure
        if not response.content:
            return None
        return response.json()

    def _retryable(self, method: str) -> Any:
        def check(exc: BaseException) -> bool:
            if method in _IDEMPOTENT:
                return isinstance(exc, (TransientError, UnavailableError))
            # POST: only when it surely did not happen
            return (isinstance(exc, UnavailableError) and exc.not_sent) or (
                isinstance(exc, TransientError) and exc.status == 429
            )

        return check

    def _policy(self, method: str) -> RetryPolicy:
        """`max_retries` retries after the first attempt; waits initial·2^(n-1)·uniform(1, 2), at most
        `backoff_max_s` (the jitter spreads parallel workers), at least a Retry-After (capped as well)."""
        return RetryPolicy(
            attempts=max(self.max_retries, 0) + 1,
            base_s=self.backoff_initial_s,
            max_s=self.backoff_max_s,
            jitter=(1.0, 2.0),
            retryable=self._retryable(method),
        )

    @staticmethod
    def _log_retry(state: RetryState) -> None:
        exc = failure_of(state)
        log.warning("EspoCRM retry %d: %s", state.attempt_number, exc)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call below /api/v1 with the retry policy of its method; raises EspoCrmError."""
        method = method.upper()
        for attempt in self._policy(method).retrying(before_sleep=self._log_retry):
            with attempt:
                try:
                    return self._once(method, path, **kwargs)
                except EspoCrmError as exc:
                    exc.attempts = attempt.retry_state.attempt_number
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- records ---------------------------------------------------------------------------
    @staticmethod
    def _path(entity: str, record_id: str | None = None) -> str:
        path = quote(entity, safe="")
        return path if record_id is None else f"{path}/{quote(record_id, safe='')}"

    def get(self, entity: str, record_id: str) -> dict[str, Any]:
        """The record; NotFoundError if it does not exist (or was deleted)."""
        return self.request("GET", self._path(entity, record_id))

    def list_page(
        self,
        entity: str,
        *,
        where: Where | None = None,
        select: builtins.list[str] | None = None,
        max_size: int = MAX_PAGE_SIZE,
        offset: int = 0,
        order_by: str | None = None,
        order: str | None = None,
    ) -> dict[str, Any]:
        """One page as EspoCRM answers it: {"total": n, "list": [...]}."""
        if not 0 < max_size <= MAX_PAGE_SIZE:
            raise ValueError(f"max_size must be 1..{MAX_PAGE_SIZE}")
        params: builtins.list[tuple[str, str]] = [("maxSize", str(max_size)), ("offset", str(offset))]
        if select:
            params.append(("select", ",".join(select)))
        if order_by:
            params.append(("orderBy", order_by))
            params.append(("order", order or "asc"))
        params += where_params(where)
        return self.request("GET", self._path(entity), params=params)

    def iter_list(self, entity: str, **query: Unpack[ListQuery]) -> Iterator[dict[str, Any]]:
        """Every matching record, page by page (the keywords of `list_page` but the offset). Oldest
        first unless `order_by` says otherwise, so records created while paging land on later pages
        instead of shifting the ones already read."""
        query.setdefault("order_by", "createdAt")
        max_size = query.get("max_size", MAX_PAGE_SIZE)
        offset, seen = 0, set()
        while True:
            page = self.list_page(entity, offset=offset, **query)
            rows = page.get("list") or []
            for row in rows:
                if row.get("id") not in seen:
                    seen.add(row.get("id"))
                    yield row
            offset += len(rows)
            total = page.get("total")
            # total is -1/-2 ("unknown") on large tables in EspoCRM: then a short page ends the list
            if len(rows) < max_size or (isinstance(total, int) and 0 <= total <= offset):
                return

    def list(self, entity: str, **query: Unpack[ListQuery]) -> builtins.list[dict[str, Any]]:
        """All matching records (pages through with offset; max_size is the page size, ≤ 200), in the
        order and with the defaults of `iter_list`."""
        return builtins.list(self.iter_list(entity, **query))

    def create(self, entity: str, data: Mapping[str, Any], *, skip_duplicate_check: bool = False) -> dict[str, Any]:
        headers = {"X-Skip-Duplicate-Check": "true"} if skip_duplicate_check else None
        return self.request("POST", self._path(entity), json=dict(data), headers=headers)

    def update(
        self, entity: str, record_id: str, data: Mapping[str, Any], version_number: int | None = None
    ) -> dict[str, Any]:
        """Partial update (PUT). With `version_number`, a stale version raises ConflictError."""
        headers = {"X-Version-Number": str(version_number)} if version_number is not None else None
        try:
            return self.request("PUT", self._path(entity, record_id), json=dict(data), headers=headers)
        except ConflictError as exc:
            if exc.attempts > 1:  # an earlier attempt may have applied it
                current = self.get(entity, record_id)
                if all(current.get(k) == v for k, v in data.items()):
                    return current
            raise

    def delete(self, entity: str, record_id: str) -> None:
        try:
            self.request("DELETE", self._path(entity, record_id))
        except NotFoundError as exc:
            if exc.attempts > 1:  # the lost first attempt deleted it
                return
            raise

    # -- webhooks --------------------------------------------------------------------------
    def register_webhook(self, event: str, url: str, skip_own: bool = True) -> dict[str, Any]:
        """Subscribe `url` to `event` (e.g. "CBeteiligte.update"); the answer holds `id` and `secretKey`."""
        return self.request("POST", "Webhook", json={"event": event, "url": url, "skipOwn": skip_own})

    def list_webhooks(self) -> builtins.list[dict[str, Any]]:
        return builtins.list(self.iter_list("Webhook", order_by="createdAt"))

    def delete_webhook(self, webhook_id: str) -> None:
        self.delete("Webhook", webhook_id)
