"""The compose deployment started for real: `make compose-check` passes.

It builds the images on this machine, starts docker-compose.yaml (profile sandbox) with podman-compose,
plays the demo scenario from outside, layers docker-compose.celery.yaml, restarts and stops/starts the
stack with its volumes and tears it down; see devstack/compose_check.py. Root only (podman as root,
apt-get for the tools); `make test-fast` leaves it out (-m "not compose").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.compose_env import CORE

pytestmark = [pytest.mark.compose, pytest.mark.timeout(3600)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="podman as root and apt-get: the check runs as root")
def test_compose_check_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack.compose_check"],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=3500,
    )
    print(done.stdout)  # the check's own report: every service healthy, the scenario, the workers
    assert done.returncode == 0, done.stdout[-6000:]
    out = done.stdout
    for service in (*CORE, "airflow-worker"):
        assert f"_{service}_1: healthy" in out, f"{service} never reported healthy"
    assert "task instances:" in out and "compose-check: PASSED" in out
    assert "containers left: none; volumes left: none" in out
