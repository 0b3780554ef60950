"""Airflow plugin: the sync status view (include/status) inside the Airflow UI.

- `fastapi_apps`: the status app mounted by the api-server at /sync-status (HTML at /sync-status/,
  JSON at /sync-status/api).
- `external_views`: the menu entry Browse → "Sync status"; with `url_route` the UI shows the page in
  an iframe at /plugin/sync-status, and `href` (relative: the UI sets <base href>) points at the mount.

Airflow 3.3.2 mounts plugin apps with a bare `app.mount()`: its JWT check does not reach them. So
every request here must carry the same Airflow JWT as the UI (the `_token` cookie the browser sends
to the iframe, or `Authorization: Bearer`), and the auth manager must allow GET on the custom view
"Sync status" (SimpleAuthManager: any logged-in role; FAB: grant the resource to the roles wanted).

Where the state is: the Airflow connections `sync_hub_default` and `redis_default`, else the .env
(include.settings) when a connection is not defined. Airflow-side imports stay inside functions:
every Airflow process loads plugins, only the api-server serves this app.
"""

from __future__ import annotations

import logging

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from include.status.app import create_app
from include.status.queries import Sources

log = logging.getLogger(__name__)

URL_PREFIX = "/sync-status"
RESOURCE_NAME = "Sync status"
HUB_CONN_ID = "sync_hub_default"
REDIS_CONN_ID = "redis_default"

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


def airflow_sources() -> Sources:
    """Hub DSN and Redis client from the Airflow connections, each falling back to the .env."""
    from airflow.providers.redis.hooks.redis import RedisHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from include.hooks.hub import HubHook
    from include.settings import get_settings

    try:
        dsn = HubHook(HUB_CONN_ID).dsn()
    except AirflowNotFoundException:
        log.debug("connection %s not defined: hub from the .env", HUB_CONN_ID)
        dsn = get_settings().postgres.dsn()
    try:
        return Sources(dsn, RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn())
    except AirflowNotFoundException:
        log.debug("connection %s not defined: Redis from the .env", REDIS_CONN_ID)
        return Sources.from_urls(dsn, get_settings().redis_url)


status_app = create_app(airflow_sources, dependencies=[Depends(require_airflow_user)])


class SyncStatusPlugin(AirflowPlugin):
    name = "sync_status"
    fastapi_apps = [{"app": status_app, "url_prefix": URL_PREFIX, "name": "Sync status"}]
    external_views = [{
        "name": "Sync status",
        "href": URL_PREFIX.lstrip("/") + "/",
        "url_route": "sync-status",
        "destination": "nav",
        "category": "browse",
    }]
