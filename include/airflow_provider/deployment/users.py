"""Named logins for the Airflow UI under the FAB auth manager: three roles and the users of .env.

Run by compose's airflow-init after `airflow db migrate` (`kanzlei-sync airflow users`), idempotent:

- **Sync Viewer**: reads everything a viewer of Airflow reads (DAGs, runs, task logs) and the sync
  status view; triggers nothing.
- **Sync Operator**: the viewer's rights plus Airflow's "User" rights (trigger, clear, mark runs and task
  instances) and the replay button of the status view.
- **Sync Gateway**: the gateway's own account (AIRFLOW_API_USERNAME): reads and triggers runs of the two
  sync DAGs only, reads their tasks and the pools (the connection check); no logs, no clearing, no other
  DAG, no connections, variables or pools to change. FAB lets only a user who may edit a DAG trigger it,
  so this account could also pause those two DAGs: nothing more.

Users come from AIRFLOW_UI_USERS (`username:operator|viewer|admin:initial password[:e-mail]`): created
when missing, never changed afterwards (a password changed in the UI stays). The gateway's account is
made to match .env on every run (its password is AIRFLOW_API_PASSWORD). Logs name users and roles, never
a password.
"""

from __future__ import annotations

import logging
from typing import Any

from include.dag_ids import BETEILIGTE_SYNC_DAG, CALENDAR_EMPLOYEE_SYNC_DAG, CALENDAR_SYNC_DAG
from include.settings import Settings

log = logging.getLogger(__name__)

VIEWER, OPERATOR, GATEWAY = "Sync Viewer", "Sync Operator", "Sync Gateway"
ROLE_OF = {"viewer": VIEWER, "operator": OPERATOR, "admin": "Admin"}
STATUS_VIEW = "Sync status"  # the custom view of plugins/sync_status_plugin.py


def role_permissions(sm: Any) -> dict[str, list[tuple[str, str]]]:
    """The permissions (action, resource) of our three roles, from FAB's own lists."""
    from airflow.providers.fab.www.security import permissions as p

    viewer = [*sm.VIEWER_PERMISSIONS, (p.ACTION_CAN_READ, STATUS_VIEW)]
    operator = [*viewer, *sm.USER_PERMISSIONS, (p.ACTION_CAN_CREATE, STATUS_VIEW)]
    gateway = [
        (p.ACTION_CAN_CREATE, p.RESOURCE_DAG_RUN),
        (p.ACTION_CAN_READ, p.RESOURCE_DAG_RUN),
        (p.ACTION_CAN_READ, p.RESOURCE_TASK_INSTANCE),
        (p.ACTION_CAN_READ, p.RESOURCE_POOL),
    ]
    for dag_id in (CALENDAR_SYNC_DAG, CALENDAR_EMPLOYEE_SYNC_DAG, BETEILIGTE_SYNC_DAG):
        gateway += [
            (p.ACTION_CAN_READ, p.resource_name(dag_id, p.RESOURCE_DAG)),
            (p.ACTION_CAN_EDIT, p.resource_name(dag_id, p.RESOURCE_DAG)),
        ]
    return {VIEWER: viewer, OPERATOR: operator, GATEWAY: gateway}


def _role(sm: Any, name: str, wanted: list[tuple[str, str]]) -> Any:
    role = sm.find_role(name) or sm.add_role(name)
    have = {(perm.action.name, perm.resource.name) for perm in role.permissions}
    for action, resource in wanted:
        if (action, resource) not in have:
            sm.add_permission_to_role(role, sm.create_permission(action, resource))
    for perm in list(role.permissions):  # exactly these: a right taken out of the list is taken away
        if (perm.action.name, perm.resource.name) not in set(wanted):
            sm.remove_permission_from_role(role, perm)
    return role


def ensure(settings: Settings) -> list[str]:
    """Roles and users as .env says; returns what was done (names and roles only)."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    accounts = settings.airflow_ui.accounts()  # a bad entry stops here, before anything is written
    api = settings.airflow_api
    if api.username in {a[0] for a in accounts}:
        raise ValueError(
            f"AIRFLOW_API_USERNAME ({api.username}) is also in AIRFLOW_UI_USERS: the gateway needs "
            "an account of its own"
        )
    gateway_password = api.password.get_secret_value()
    if not gateway_password:
        raise ValueError("AIRFLOW_API_PASSWORD is empty: the gateway's Airflow account needs one")
    done: list[str] = []
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        roles = {name: _role(sm, name, perms) for name, perms in role_permissions(sm).items()}
        roles["Admin"] = sm.find_role("Admin")
        for username, kind, password, email in accounts:
            if sm.find_user(username=username) is not None:
                done.append(f"user {username}: exists (left as it is)")
                continue
            if not sm.add_user(username, username, kind, email, roles[ROLE_OF[kind]], password):
                raise RuntimeError(f"could not create the Airflow user {username}")
            done.append(f"user {username}: created ({ROLE_OF[kind]})")
        user = sm.find_user(username=api.username)
        if user is None:
            if not sm.add_user(
                api.username,
                "kanzlei-sync",
                "gateway",
                f"{api.username}@kanzlei-sync.invalid",
                roles[GATEWAY],
                gateway_password,
            ):
                raise RuntimeError(f"could not create the gateway's Airflow user {api.username}")
            done.append(f"user {api.username}: created ({GATEWAY})")
        else:
            user.roles = [roles[GATEWAY]]
            sm.update_user(user)
            sm.reset_password(user.id, gateway_password)
            done.append(f"user {api.username}: role and password as in .env ({GATEWAY})")
    for line in done:
        log.info("%s", line)
    return done
