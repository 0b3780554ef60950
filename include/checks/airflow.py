"""Airflow's REST API: the gateway's login, the three sync DAGs present and unpaused, the pools their tasks use."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from include.airflow_api import AirflowApi, AirflowApiError
from include.checks.verdict import Verdict, fail, ok, skip
from include.dag_ids import BETEILIGTE_SYNC_DAG, CALENDAR_EMPLOYEE_SYNC_DAG, CALENDAR_SYNC_DAG
from include.settings import Settings

SERVICE = "airflow"
DAGS = (CALENDAR_SYNC_DAG, CALENDAR_EMPLOYEE_SYNC_DAG, BETEILIGTE_SYNC_DAG)


def check(settings: Settings) -> list[Verdict]:
    a = settings.airflow_api
    api = AirflowApi(
        a.url, a.username, a.password.get_secret_value(), timeout_s=min(a.timeout_s, 15.0), trigger_attempts=1
    )
    try:
        try:
            api.request("GET", "/api/v2/version")
        except AirflowApiError as exc:
            return [
                fail(
                    SERVICE,
                    f"login of {a.username} at {a.url}: refused (HTTP {exc.status})",
                    "AIRFLOW_API_USERNAME / AIRFLOW_API_PASSWORD: the gateway's own Airflow account "
                    "(compose: created by airflow-init from .env)",
                )
            ]
        except httpx.HTTPError as exc:
            return [
                fail(
                    SERVICE,
                    f"{a.url}: not reachable ({type(exc).__name__})",
                    "check AIRFLOW_API_URL and that the api-server runs",
                )
            ]
        verdicts = [ok(SERVICE, f"login of {a.username} at {a.url}")]
        pools: set[str] = set()
        for dag_id in DAGS:
            verdicts.append(_dag(api, dag_id, pools))
        verdicts.extend(_pools(api, sorted(pools)))
        return verdicts
    except httpx.HTTPError as exc:
        return [fail(SERVICE, f"{a.url}: {type(exc).__name__} while reading", "check the api-server's log")]
    finally:
        api.close()


def _dag(api: AirflowApi, dag_id: str, pools: set[str]) -> Verdict:
    r = api.request("GET", f"/api/v2/dags/{quote(dag_id, safe='')}")
    if r.status_code == 404:
        return fail(
            SERVICE,
            f"DAG {dag_id}: missing",
            "the dag-processor has not parsed dags/ (see DAG import errors in the UI and its log)",
        )
    if r.status_code != 200:
        return fail(SERVICE, f"DAG {dag_id}: HTTP {r.status_code}", "the account needs read on the sync DAGs")
    if r.json().get("is_paused"):
        return fail(SERVICE, f"DAG {dag_id}: paused", f"unpause it in the UI, or `airflow dags unpause {dag_id}`")
    tasks = api.request("GET", f"/api/v2/dags/{quote(dag_id, safe='')}/tasks")
    if tasks.status_code == 200:
        pools.update(t["pool"] for t in tasks.json().get("tasks", []) if t.get("pool") not in (None, "default_pool"))
    return ok(SERVICE, f"DAG {dag_id}: present, unpaused")


def _pools(api: AirflowApi, names: list[str]) -> list[Verdict]:
    out = []
    for name in names:
        r = api.request("GET", f"/api/v2/pools/{quote(name, safe='')}")
        if r.status_code == 404:
            out.append(
                fail(
                    SERVICE,
                    f"pool {name}: missing (tasks in it never start)",
                    f'`airflow pools set {name} 4 "calendar sync: concurrent calls to this API"`',
                )
            )
        elif r.status_code == 403:
            out.append(skip(SERVICE, f"pool {name}: the account may not read pools", "grant it read on Pools"))
        elif r.status_code == 200:
            out.append(ok(SERVICE, f"pool {name}: {r.json().get('slots')} slots"))
        else:
            out.append(fail(SERVICE, f"pool {name}: HTTP {r.status_code}", "check the api-server's log"))
    return out
