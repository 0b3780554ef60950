"""The Airflow REST client against a small FastAPI app that implements the two endpoints it uses with
Airflow 3.3.2's documented status codes (docs/external-apis.md, Airflow): 201 token, 200 run, 409 repeated
run id, 422 missing logical_date / extra key, 401 without a valid token, 404 unknown DAG.
The end-to-end against a real `airflow standalone` comes with the DAG."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from include.airflow_api import AirflowApi, AirflowApiError
from sandbox.runner import ServerThread, free_port

USER, PASSWORD = "gateway", "s3cret-pw"
_KEY = b"fake-airflow-jwt-secret"
_RUN_KEYS = {
    "dag_run_id",
    "data_interval_start",
    "data_interval_end",
    "logical_date",
    "run_after",
    "conf",
    "note",
    "partition_key",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_fake_airflow(dags: tuple[str, ...] = ("beteiligte_sync",), token_lifetime_s: float = 86400) -> FastAPI:
    """Airflow's /auth/token and /api/v2/dags/{id}/dagRuns, as observed on 3.3.2."""
    app = FastAPI()
    app.state.runs = {}  # (dag_id, run_id) -> run
    app.state.revoked = set()
    app.state.logins = 0
    app.state.trigger_calls = 0
    app.state.fail_next = 0  # answer 500 to the next n triggers, storing nothing (SQLite "database is locked")
    lock = threading.Lock()

    def issue() -> str:
        now = int(time.time())
        header = _b64(json.dumps({"alg": "HS512", "kid": "not-used"}).encode())
        payload = _b64(
            json.dumps(
                {
                    "sub": USER,
                    "role": "user",
                    "aud": "apache-airflow",
                    "iat": now,
                    "exp": now + token_lifetime_s,
                    "jti": uuid.uuid4().hex,
                }
            ).encode()
        )
        sig = _b64(hmac.new(_KEY, f"{header}.{payload}".encode(), hashlib.sha512).digest())
        return f"{header}.{payload}.{sig}"

    def authorised(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return False
        token = auth[7:]
        try:
            header, payload, sig = token.split(".")
        except ValueError:
            return False
        good = _b64(hmac.new(_KEY, f"{header}.{payload}".encode(), hashlib.sha512).digest())
        if not hmac.compare_digest(good, sig) or token in app.state.revoked:
            return False
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims["exp"] > time.time()

    @app.post("/auth/token")
    async def token(request: Request) -> JSONResponse:
        if request.headers.get("content-type", "").startswith("application/json"):
            creds = await request.json()
        else:
            creds = dict(await request.form())
        if creds.get("username") != USER or creds.get("password") != PASSWORD:
            return JSONResponse({"detail": "Invalid credentials"}, status_code=401)
        app.state.logins += 1
        return JSONResponse({"access_token": issue()}, status_code=201)

    @app.post("/api/v2/dags/{dag_id}/dagRuns")
    async def trigger(dag_id: str, request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        body = await request.json()
        app.state.trigger_calls += 1
        if "logical_date" not in body:
            return JSONResponse(
                {"detail": [{"type": "missing", "loc": ["body", "logical_date"], "msg": "Field required"}]},
                status_code=422,
            )
        extra = set(body) - _RUN_KEYS
        if extra:
            return JSONResponse(
                {"detail": [{"type": "extra_forbidden", "loc": ["body", sorted(extra)[0]]}]}, status_code=422
            )
        if dag_id not in dags:
            return JSONResponse({"detail": f"Dag with dag_id: '{dag_id}' not found"}, status_code=404)
        if app.state.fail_next > 0:
            app.state.fail_next -= 1
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        run_id = body.get("dag_run_id") or f"manual__{time.time()}"
        with lock:
            if (dag_id, run_id) in app.state.runs:
                return JSONResponse({"detail": {"reason": "Unique constraint violation"}}, status_code=409)
            run = {
                "dag_run_id": run_id,
                "dag_id": dag_id,
                "logical_date": body["logical_date"],
                "state": "queued",
                "run_type": "manual",
                "triggered_by": "rest_api",
                "conf": body.get("conf") or {},
                "note": body.get("note"),
            }
            app.state.runs[(dag_id, run_id)] = run
        return JSONResponse(run, status_code=200)

    @app.get("/api/v2/dags/{dag_id}/dagRuns")
    async def list_runs(dag_id: str, request: Request, state: str | None = None, limit: int = 50) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        runs = [r for (d, _), r in app.state.runs.items() if d == dag_id and (state is None or r["state"] == state)]
        return JSONResponse({"dag_runs": runs[:limit], "total_entries": len(runs)})

    return app


@pytest.fixture
def airflow() -> Iterator[tuple[FastAPI, str]]:
    app = make_fake_airflow()
    with ServerThread(app) as server:
        yield app, server.url


def test_trigger_logs_in_once_and_creates_a_queued_run(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    api = AirflowApi(url, USER, PASSWORD)
    a = api.trigger("beteiligte_sync", {"reason": "webhook"})
    b = api.trigger("beteiligte_sync")
    assert a.created and a.state == "queued" and a.dag_run_id != b.dag_run_id
    assert api.logins == 1 and app.state.logins == 1  # the JWT is cached
    run = app.state.runs[("beteiligte_sync", a.dag_run_id)]
    assert run["logical_date"] is None and run["conf"] == {"reason": "webhook"}


def test_repeated_run_id_is_idempotent(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    api = AirflowApi(url, USER, PASSWORD)
    assert api.trigger("beteiligte_sync", dag_run_id="gw-1").created
    again = api.trigger("beteiligte_sync", dag_run_id="gw-1")
    assert (again.created, again.dag_run_id) == (False, "gw-1")
    assert len(app.state.runs) == 1


def test_a_momentary_server_error_is_retried_without_a_second_run(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    api = AirflowApi(url, USER, PASSWORD, retry_wait_s=0.01)
    app.state.fail_next = 2
    result = api.trigger("beteiligte_sync", dag_run_id="gw-retry")
    assert result.created and app.state.trigger_calls == 3
    app.state.fail_next = 1
    auto = api.trigger("beteiligte_sync")  # no id given: the client names the run, so a retry stays one run
    assert auto.created and len(app.state.runs) == 2
    app.state.fail_next = 10
    with pytest.raises(AirflowApiError) as err:
        api.trigger("beteiligte_sync", dag_run_id="gw-down")
    assert err.value.status == 500 and ("beteiligte_sync", "gw-down") not in app.state.runs


def test_without_logical_date_the_server_answers_422(airflow: tuple[FastAPI, str]) -> None:
    """Proof that the fake enforces the rule the client must follow (and that the client follows it)."""
    _, url = airflow
    api = AirflowApi(url, USER, PASSWORD)
    r = api.request("POST", "/api/v2/dags/beteiligte_sync/dagRuns", json={"conf": {}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "logical_date"]


def test_unknown_dag_and_bad_credentials_raise(airflow: tuple[FastAPI, str]) -> None:
    _, url = airflow
    with pytest.raises(AirflowApiError) as err:
        AirflowApi(url, USER, PASSWORD).trigger("nope")
    assert err.value.status == 404
    with pytest.raises(AirflowApiError) as err:
        AirflowApi(url, USER, "wrong").trigger("beteiligte_sync")
    assert err.value.status == 401


def test_a_rejected_token_is_renewed_once(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    api = AirflowApi(url, USER, PASSWORD)
    api.trigger("beteiligte_sync")
    app.state.revoked.add(api._token)  # e.g. Airflow restarted with a new JWT secret
    assert api.trigger("beteiligte_sync").created
    assert api.logins == 2 and len(app.state.runs) == 2


def test_a_token_near_its_expiry_is_renewed_before_use() -> None:
    app = make_fake_airflow(token_lifetime_s=30)  # inside the 60 s renewal margin
    with ServerThread(app) as server:
        api = AirflowApi(server.url, USER, PASSWORD)
        api.trigger("beteiligte_sync")
        api.trigger("beteiligte_sync")
        assert api.logins == 2 and app.state.trigger_calls == 2  # renewed up front, no 401 round trip


def test_coalesced_trigger_keeps_at_most_one_queued_run(airflow: tuple[FastAPI, str], redis_url: str) -> None:
    app, url = airflow
    r = redis.Redis.from_url(redis_url)
    apis = [AirflowApi(url, USER, PASSWORD, redis_client=r) for _ in range(4)]  # 4 gateway workers
    outcomes: list[str] = []

    def hit(api: AirflowApi) -> None:
        for _ in range(5):
            outcomes.append(api.trigger_coalesced("beteiligte_sync"))

    threads = [threading.Thread(target=hit, args=(a,)) for a in apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(outcomes) == 20
    assert outcomes.count("triggered") == 1 and len(app.state.runs) == 1

    # a running run does not count: the next webhook needs a new queued run
    for run in app.state.runs.values():
        run["state"] = "running"
    assert apis[0].trigger_coalesced("beteiligte_sync") == "triggered"
    assert apis[1].trigger_coalesced("beteiligte_sync") == "already_queued"
    assert [run["state"] for run in app.state.runs.values()].count("queued") == 1
    assert r.keys("vmh:airflow:trigger_lock:*") == []  # released


def test_unreachable_airflow_raises_a_transport_error() -> None:
    api = AirflowApi(f"http://127.0.0.1:{free_port()}", USER, PASSWORD, timeout_s=2)
    with pytest.raises(httpx.TransportError):
        api.trigger_coalesced("beteiligte_sync")


def test_the_async_trigger_gives_up_at_its_deadline_when_airflow_never_answers() -> None:
    import asyncio
    import socket

    from include.airflow_api_async import AsyncAirflowApi

    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]

        async def attempt() -> float:
            api = AsyncAirflowApi(f"http://127.0.0.1:{port}", USER, PASSWORD, timeout_s=30, deadline_s=1.0)
            started = time.monotonic()
            try:
                with pytest.raises(TimeoutError):
                    await api.trigger("beteiligte_sync", {}, "run-1")
                return time.monotonic() - started
            finally:
                await api.aclose()

        took = asyncio.run(attempt())
    assert 0.9 < took < 10  # the deadline, not the 30 s request timeout
