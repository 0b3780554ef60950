"""Airflow plugin: the sync status view (include/status) inside the Airflow UI.

- `fastapi_apps`: the status app mounted by the api-server at /sync-status (HTML at /sync-status/,
  JSON at /sync-status/api).
- `external_views`: the menu entry Browse → "Sync status"; with `url_route` the UI shows the page in
  an iframe at /plugin/sync-status, and `href` (relative: the UI sets <base href>) points at the mount.

Airflow 3.3.2 mounts plugin apps with a bare `app.mount()`: its JWT check does not reach them. So
every request here must carry the same Airflow JWT as the UI (the `_token` cookie the browser sends
to the iframe, or `Authorization: Bearer`), and the auth manager must allow GET on the custom view
"Sync status" (SimpleAuthManager: any logged-in role; FAB: the roles Sync Viewer and Sync Operator of
include/airflow_provider/deployment/users.py have it, Operator also POST for the replay).

The replay of a dead letter (`AirflowHost`) is a write and starts a DAG run: it needs POST on the
custom view **and** the right to trigger runs of both sync DAGs (DAG run POST; SimpleAuthManager:
role User or above, a Viewer sees the page read-only), a same-origin form and the page's CSRF token
(HMAC keyed from `[api_auth] jwt_secret`, which every api-server worker shares). The answer to an
employee's safety stop (refill Google from Advoware, or confirm the deletions) needs the same. The run is created
in-process by Airflow's `trigger_dag` (triggered by "ui", as the user). Links point at the task
instances in Airflow's metadata: each employee's latest phase task of its last calendar run
(`employee_sync.phase_*` of the employee's unit: the map index its run row records; the log has a
group per employee), or that run's `plan_employees` when the employee had nothing to do.

Where the state is: the Airflow connections `sync_hub_default` and `redis_default`, else the .env
(include.settings) when a connection is not defined. Airflow-side imports stay inside functions:
every Airflow process loads plugins, only the api-server serves this app.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, cast
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from include import conn_ids
from include.dag_ids import BETEILIGTE_SYNC_DAG, CALENDAR_SYNC_DAG
from include.status.app import create_app
from include.status.page import Links
from include.status.queries import Sources
from include.status.replay import RunRequest

log = logging.getLogger(__name__)

URL_PREFIX = "/sync-status"
RESOURCE_NAME = "Sync status"

_bearer = HTTPBearer(auto_error=False)


async def require_airflow_user(
    request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """Airflow's own user resolution (Bearer first, then the `_token` cookie), then authorization."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user

    user = await get_user(request, _oauth_token=None, bearer_credentials=bearer)  # 401 / 403 on bad token
    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=RESOURCE_NAME, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    request.state.airflow_user = user  # for the host: who writes, whose CSRF token


def _ui(dag_id: str, run_id: str, task_id: str | None = None, map_index: int = -1) -> str:
    """A path of the Airflow UI relative to the page (served at <ui>/sync-status/)."""
    path = f"../dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    if task_id:
        path += f"/tasks/{quote(task_id, safe='')}"
        if map_index >= 0:
            path += f"/mapped/{map_index}"
    return path


class AirflowHost:
    """What the status app needs from Airflow: the user, their rights, triggering runs, UI links."""

    @property
    def csrf_key(self) -> bytes:
        from airflow.api_fastapi.auth.tokens import get_signing_key

        return hmac.new(
            get_signing_key("api_auth", "jwt_secret").encode(), b"sync-status csrf", hashlib.sha256
        ).digest()

    @staticmethod
    def _user(request: Request) -> Any:
        return request.state.airflow_user

    def user_id(self, request: Request) -> str:
        return f"{type(self._user(request)).__name__}:{self._user(request).get_id()}"

    def may_write(self, request: Request) -> bool:
        from airflow.api_fastapi.app import get_auth_manager

        user = self._user(request)
        return get_auth_manager().is_authorized_custom_view(
            method="POST", resource_name=RESOURCE_NAME, user=user
        ) and all(self.may_trigger(request, d) for d in (BETEILIGTE_SYNC_DAG, CALENDAR_SYNC_DAG))

    def may_trigger(self, request: Request, dag_id: str) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

        return get_auth_manager().is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=self._user(request)
        )

    def trigger(self, request: Request, run: RunRequest) -> bool:
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.exceptions import DagRunAlreadyExists
        from airflow.utils.types import DagRunTriggeredByType

        try:
            trigger_dag(
                run.dag_id,
                triggered_by=DagRunTriggeredByType.UI,
                run_id=run.run_id,
                conf=run.conf,
                note=run.note,
                triggering_user_name=self._user(request).get_name(),
            )
        except DagRunAlreadyExists:
            return False
        return True

    def links(self, status_: dict[str, Any], replayed: int | None, started: str | None = None) -> Links:
        try:
            return self._links(status_, replayed, started)
        except Exception as exc:  # the metadata DB busy: the page without links, not no page
            log.warning("status view: no Airflow links (%s)", type(exc).__name__)
            return Links()

    def _links(self, status_: dict[str, Any], replayed: int | None, started: str | None) -> Links:
        from airflow.models import DagRun, TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        last = {e["employee"]: e["last_run"]["run_id"] for e in status_["employees"] if e["last_run"]}
        units = {e["employee"]: e["last_run"].get("unit") for e in status_["employees"] if e["last_run"]}
        logs: dict[str, str] = {}
        runs: list[dict[str, Any]] = []
        with create_session() as session:
            tis = session.execute(
                select(
                    TaskInstance.run_id,
                    TaskInstance.task_id,
                    TaskInstance.map_index,
                    # a hybrid property: its SQL expression is defined apart, which the stubs do not see
                    cast(Any, TaskInstance.rendered_map_index),
                    TaskInstance.start_date,
                ).where(TaskInstance.dag_id == CALENDAR_SYNC_DAG, TaskInstance.run_id.in_(set(last.values())))
            ).all()
            for employee, run_id in last.items():
                unit = units.get(employee)  # the employee's unit in that run (its map index)
                own = [
                    t
                    for t in tis
                    if t.run_id == run_id
                    and t.task_id.startswith("employee_sync.")
                    and (t.map_index == unit if unit is not None else t.rendered_map_index == employee)
                    and t.start_date is not None
                ]
                if own:
                    t = max(own, key=lambda t: t.start_date)
                    logs[employee] = _ui(CALENDAR_SYNC_DAG, run_id, t.task_id, t.map_index)
                elif any(t.run_id == run_id and t.task_id == "plan_employees" for t in tis):
                    logs[employee] = _ui(CALENDAR_SYNC_DAG, run_id, "plan_employees")
            wanted: tuple[str, ...] = (started,) if started else ()
            if replayed is not None:
                wanted += (f"replay__calendar__{replayed}", f"replay__beteiligte__{replayed}")
            if wanted:
                for r in session.execute(
                    select(DagRun.dag_id, DagRun.run_id, DagRun.state).where(DagRun.run_id.in_(wanted))
                ).all():
                    runs.append(
                        {"dag_id": r.dag_id, "run_id": r.run_id, "state": str(r.state), "href": _ui(r.dag_id, r.run_id)}
                    )
        party = status_.get("party_run")
        return Links(
            employee_logs=logs,
            replay_runs=runs,
            party_run_log=_ui(BETEILIGTE_SYNC_DAG, party["run_id"], "drain_queue") if party else None,
        )


def airflow_sources() -> Sources:
    """Hub DSN and Redis client from the Airflow connections, each falling back to the .env."""
    from airflow.providers.redis.hooks.redis import RedisHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from include.airflow_provider.hooks.hub import HubHook
    from include.settings import get_settings

    try:
        dsn = HubHook(conn_ids.SYNC_HUB).dsn()
    except AirflowNotFoundException:
        log.debug("connection %s not defined: hub from the .env", conn_ids.SYNC_HUB)
        dsn = get_settings().postgres.dsn()
    try:
        return Sources(dsn, RedisHook(redis_conn_id=conn_ids.REDIS).get_conn())
    except AirflowNotFoundException:
        log.debug("connection %s not defined: Redis from the .env", conn_ids.REDIS)
        return Sources.from_urls(dsn, get_settings().redis_url)


def run_checks() -> list[Any]:
    """The connection check with the .env settings (every component gets them): imported on first use,
    since every Airflow process loads this plugin."""
    from include.checks.run import run_all
    from include.settings import get_settings

    return run_all(get_settings())


status_app = create_app(
    airflow_sources, dependencies=[Depends(require_airflow_user)], host=AirflowHost(), checks=run_checks
)


class SyncStatusPlugin(AirflowPlugin):
    name = "sync_status"
    fastapi_apps = [{"app": status_app, "url_prefix": URL_PREFIX, "name": "Sync status"}]
    external_views = [
        {
            "name": "Sync status",
            "href": URL_PREFIX.lstrip("/") + "/",
            "url_route": "sync-status",
            "destination": "nav",
            "category": "browse",
        }
    ]
