"""The host name Airflow records for a task instance (`[core] hostname_callable`).

In Docker Compose every worker container has a host name of its own. Several Celery workers on one
machine (`make scale-demo`, the e2e test) share it, so each worker process names itself with
AIRFLOW_WORKER_NAME, and its task processes inherit the variable: the UI, the REST API and the
status view then show which worker ran which task. Unset: the machine's fully qualified name, as
Airflow's default does.
"""

from __future__ import annotations

import os
import socket

ENV = "AIRFLOW_WORKER_NAME"


def hostname() -> str:
    return os.environ.get(ENV) or socket.getfqdn()
