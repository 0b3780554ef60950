"""A small client of the Airflow 3 REST API v2 (httpx): JWT login, trigger a DAG run, coalesced triggers.

Facts (docs/external-apis.md, Airflow): `POST /auth/token` {"username","password"} → 201 {"access_token"};
`POST /api/v2/dags/{dag_id}/dagRuns` needs the key `logical_date` (null allowed) → 200, a repeated
`dag_run_id` → 409; `GET /api/v2/dags/{dag_id}/dagRuns?state=queued` lists queued runs.
No Airflow import here: the gateway stays light.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

import httpx
import redis

from include.dag_ids import BETEILIGTE_SYNC_DAG, CALENDAR_SYNC_DAG
from include.retry import RetryPolicy, RetryState, failure_of

log = logging.getLogger(__name__)

TRIGGER_LOCK_KEY = "vmh:airflow:trigger_lock:{dag_id}"

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class AirflowApiError(RuntimeError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TriggerResult:
    dag_run_id: str | None
    created: bool  # False: a run with this id existed already (409), or a queued run made it unnecessary
    state: str | None = None


CoalescedOutcome = Literal["triggered", "already_queued"]


class ServerError(Exception):
    """A 5xx answer inside the trigger's retries; after the last attempt its `response` is returned."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response  # a Retry-After on it is honoured (include.retry.retry_after_hint)


def _trigger_retryable(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | ServerError)


def trigger_policy(attempts: int, wait_s: float) -> RetryPolicy:
    """How a trigger POST is repeated on 5xx and transport errors (sync and async client alike):
    `attempts` in all, waits wait_s·2^(n-1)·uniform(0.5, 1.5), capped at the largest of these steps
    (a Retry-After, a lower bound, cannot stretch a trigger beyond that either)."""
    attempts = max(1, attempts)
    cap = wait_s * 1.5 * 2 ** max(attempts - 2, 0)
    return RetryPolicy(attempts=attempts, base_s=wait_s, max_s=cap, jitter=(0.5, 1.5), retryable=_trigger_retryable)


def raise_for_5xx(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 500:
        raise ServerError(r)
    return r


def _jwt_exp(token: str) -> float | None:
    """The `exp` claim, read without verifying (we only need to know when to renew)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return float(json.loads(base64.urlsafe_b64decode(payload))["exp"])
    except (IndexError, KeyError, ValueError, TypeError):
        return None


def trigger_result(dag_id: str, body: dict[str, Any], r: httpx.Response) -> TriggerResult:
    """The answer to a trigger POST: created (200/201), already there (409, same run id), or an error."""
    if r.status_code in (200, 201):
        data = r.json()
        return TriggerResult(data.get("dag_run_id"), True, data.get("state"))
    if r.status_code == 409:
        return TriggerResult(body["dag_run_id"], False)
    raise AirflowApiError(f"trigger {dag_id} failed: HTTP {r.status_code} {r.text[:300]}", r.status_code)


def run_body(conf: dict[str, Any] | None, dag_run_id: str | None, note: str | None) -> dict[str, Any]:
    """The POST body of a new run (`logical_date: null`)."""
    # Name the run here when the caller did not: then a repeated POST is idempotent (409).
    dag_run_id = dag_run_id or f"api__{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}_{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {"logical_date": None, "conf": conf or {}, "dag_run_id": dag_run_id}
    if note:
        body["note"] = note
    return body


class ClientOptions(TypedDict, total=False):
    """What both clients take besides the credentials (defaults applied in `_AirflowClient`)."""

    timeout_s: float  # per HTTP call, default 10 s
    trigger_attempts: int  # a trigger POST in all, default 4
    retry_wait_s: float  # the first wait between them, default 1 s


class _AirflowClient:
    """The part of the sync and the async client that does no I/O: settings, credentials, the JWT."""

    def __init__(self, base_url: str, username: str, password: str, options: ClientOptions) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = options.get("timeout_s", 10.0)
        # A standalone Airflow on SQLite answers 500 while its database is locked by the scheduler;
        # a trigger carries its own run id, so repeating it can never start a second run.
        trigger_attempts = options.get("trigger_attempts", 4)
        self._retry_wait_s = options.get("retry_wait_s", 1.0)
        self._trigger_attempts = max(1, trigger_attempts)
        self._trigger_policy = trigger_policy(trigger_attempts, self._retry_wait_s)
        self._username = username
        self._password = password
        self._token: str | None = None
        self._token_exp: float | None = None

    def _credentials(self) -> dict[str, str]:
        """The body of `POST /auth/token`."""
        return {"username": self._username, "password": self._password}

    def _current_token(self, renew: bool) -> str | None:
        """The token while it holds for another minute; None when a login is due."""
        if renew or (self._token_exp is not None and self._token_exp - 60 < time.time()):
            return None
        return self._token

    def _accept_login(self, r: httpx.Response) -> str:
        """The token of a login answer, kept for the next calls."""
        if r.status_code not in (200, 201):
            raise AirflowApiError(f"Airflow login failed: HTTP {r.status_code}", r.status_code)
        token = r.json().get("access_token")
        if not token:
            raise AirflowApiError("Airflow login answered no access_token", r.status_code)
        self._token, self._token_exp = token, _jwt_exp(token)
        return token


class AirflowApi(_AirflowClient):
    """Thread-safe; one instance per process is enough (the token is shared)."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        redis_client: redis.Redis | None = None,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(base_url, username, password, options)
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout_s, transport=transport)
        self._redis = redis_client
        self._lock = threading.Lock()
        self.logins = 0  # how often a token was fetched (tests and metrics read it)

    @classmethod
    def from_settings(cls, settings: Any, redis_client: redis.Redis | None = None) -> AirflowApi:
        a = settings.airflow_api
        return cls(a.url, a.username, a.password.get_secret_value(), timeout_s=a.timeout_s, redis_client=redis_client)

    def close(self) -> None:
        self._http.close()

    # -- auth -----------------------------------------------------------------------------------
    def _login(self) -> str:
        token = self._accept_login(self._http.post("/auth/token", json=self._credentials()))
        self.logins += 1
        return token

    def _bearer(self, *, renew: bool = False) -> str:
        with self._lock:
            return self._current_token(renew) or self._login()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated call; on 401 the token is renewed once and the call repeated."""
        r = self._http.request(method, path, headers={"Authorization": f"Bearer {self._bearer()}"}, **kwargs)
        if r.status_code == 401:
            renewed = self._bearer(renew=True)
            r = self._http.request(method, path, headers={"Authorization": f"Bearer {renewed}"}, **kwargs)
        return r

    # -- DAG runs -------------------------------------------------------------------------------
    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, dag_run_id: str | None = None, note: str | None = None
    ) -> TriggerResult:
        """Create a run now (`logical_date: null`); a repeated `dag_run_id` → created=False (409)."""
        body = run_body(conf, dag_run_id, note)
        return trigger_result(dag_id, body, self._post_with_retries(f"/api/v2/dags/{dag_id}/dagRuns", body))

    def _post_with_retries(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST; repeat on 5xx and transport errors with exponential backoff and jitter (bounded,
        include.retry). The last answer is returned, a 5xx included; a transport error is raised."""

        def log_5xx(state: RetryState) -> None:
            exc = failure_of(state)
            if isinstance(exc, ServerError):
                log.info(
                    "Airflow answered %s to %s; attempt %d of %d",
                    exc.response.status_code,
                    path,
                    state.attempt_number,
                    self._trigger_attempts,
                )

        try:
            return self._trigger_policy.call(
                lambda: raise_for_5xx(self.request("POST", path, json=body)), before_sleep=log_5xx
            )
        except ServerError as exc:
            return exc.response

    def list_runs(self, dag_id: str, *, state: str | None = None, limit: int = 100) -> tuple[list[dict], int]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)
        if r.status_code != 200:
            raise AirflowApiError(f"list runs of {dag_id} failed: HTTP {r.status_code}", r.status_code)
        data = r.json()
        runs = data.get("dag_runs", [])
        return runs, int(data.get("total_entries", len(runs)))

    def queued_runs(self, dag_id: str) -> int:
        return self.list_runs(dag_id, state="queued", limit=1)[1]

    def get_run(self, dag_id: str, dag_run_id: str) -> dict[str, Any]:
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}")
        if r.status_code != 200:
            raise AirflowApiError(f"get run {dag_run_id} failed: HTTP {r.status_code}", r.status_code)
        return r.json()

    def trigger_coalesced(
        self,
        dag_id: str = BETEILIGTE_SYNC_DAG,
        *,
        conf: dict[str, Any] | None = None,
        lock_ttl_s: float = 10.0,
        lock_wait_s: float = 15.0,
    ) -> CoalescedOutcome:
        """Make sure a run of `dag_id` starts after this call: trigger one unless one is queued already.

        A queued run has not started its tasks, so it will see everything enqueued before this call;
        a running run does not count (it may have looked at the queue already). The check-then-trigger
        runs under a short Redis lock so concurrent gateway workers do not both trigger; a caller waits
        for the lock instead of skipping (its own check must happen after its own enqueue).
        Raises httpx.HTTPError / AirflowApiError when Airflow is unreachable or refuses.
        """
        if self._redis is None:
            return self._check_and_trigger(dag_id, conf)
        key = TRIGGER_LOCK_KEY.format(dag_id=dag_id)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + lock_wait_s
        while not self._redis.set(key, token, nx=True, px=int(lock_ttl_s * 1000)):
            if time.monotonic() > deadline:
                raise AirflowApiError(f"trigger lock {key} busy for {lock_wait_s}s")
            time.sleep(0.02)
        try:
            return self._check_and_trigger(dag_id, conf)
        finally:
            self._redis.eval(_RELEASE, 1, key, token)

    def _check_and_trigger(self, dag_id: str, conf: dict[str, Any] | None) -> CoalescedOutcome:
        if self.queued_runs(dag_id) > 0:
            return "already_queued"
        result = self.trigger(
            dag_id, conf or {}, dag_run_id=f"gateway__{uuid.uuid4().hex}", note="triggered by the webhook gateway"
        )
        log.info("triggered %s run %s", dag_id, result.dag_run_id)
        return "triggered"


def calendar_retry_run(employee: str, dead_letter_id: int) -> tuple[str, str, dict[str, Any], str]:
    """(dag id, run id, conf, note) of the calendar run that retries a replayed parked item: the run
    id is the dead letter's, so repeating the trigger starts no second run."""
    return (
        CALENDAR_SYNC_DAG,
        f"replay__calendar__{dead_letter_id}",
        {"full_content": False, "employees": [employee]},
        f"retry of the parked item of dead letter {dead_letter_id}",
    )


def trigger_calendar_retry(api: AirflowApi, employee: str, dead_letter_id: int) -> TriggerResult:
    """After a parked calendar item was replayed: a calendar run for its employee now, instead of the
    next scheduled one."""
    dag_id, run_id, conf, note = calendar_retry_run(employee, dead_letter_id)
    return api.trigger(dag_id, conf, dag_run_id=run_id, note=note)
