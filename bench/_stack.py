"""Helper of the benches (not a bench itself): a whole stack of its own, as `make demo` runs it.

`OwnStack` starts `devstack` (sandboxes, gateway, `airflow standalone`) on free ports with its
own run dir, Airflow home, Redis server and hub database, a DAGs folder holding copies of the real
DAGs plus any DAG files the bench adds; it stops exactly that stack and removes what it made.
`tree_cpu` sums the CPU seconds of a process and every descendant (including the children it has
already reaped), which is how the benches charge Airflow's task processes to the Airflow tree.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench._servers import ROOT
from sandbox.runner import free_port


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and all its descendants, alive or already reaped."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def component_pids(pid: int) -> dict[str, int]:
    """The direct children of `airflow standalone` by what they run (scheduler, api-server, ...)."""
    out: dict[str, int] = {}
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return out
    for child in children:
        try:
            words = [w for w in child.cmdline() if w and not w.startswith("-")]
        except psutil.Error:
            continue
        name = next(
            (w for w in words if w in ("scheduler", "dag-processor", "triggerer", "api-server", "api_server")),
            " ".join(words[-1:]) or str(child.pid),
        )
        out[name if name not in out else f"{name}-{child.pid}"] = child.pid
    return out


class OwnStack:
    """The devstack on free ports; `extra_dags` maps file names to DAG source added to the folder."""

    def __init__(
        self,
        *,
        extra_dags: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        redis_aof: bool = False,
        prefix: str = "bench-stack-",
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.run_dir = self.tmp / "run"
        self.airflow_home = self.tmp / "airflow"
        self.extra_dags = extra_dags or {}
        self.extra_env = env or {}
        self.redis_aof = redis_aof
        self.hub_db = f"bench_hub_{random.getrandbits(40):010x}"
        self.redis_port = free_port()
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    # -- layout ---------------------------------------------------------------------------------
    def url(self, name: str) -> str:
        keys = {"advoware": "ADVOWARE_BASE_URL", "espocrm": "ESPOCRM_BASE_URL", "airflow": "AIRFLOW_API_URL"}
        if name == "google":
            return self.env["GOOGLE_TOKEN_URI"].rsplit("/token", 1)[0]
        if name == "gateway":
            return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"
        return self.env[keys[name]]

    def pid(self, service: str) -> int:
        return int(json.loads((self.run_dir / "pids" / f"{service}.json").read_text())["pid"])

    def _environment(self) -> dict[str, str]:
        ports = {
            name: free_port()
            for name in ("advoware", "google", "espocrm", "gateway", "airflow", "worker_logs", "trigger_logs")
        }
        env = {
            **os.environ,
            "DEVSTACK_RUN_DIR": str(self.run_dir),
            "DEVSTACK_AIRFLOW_HOME": str(self.airflow_home),
            "DEVSTACK_DAGS_FOLDER": str(self.tmp / "dags"),
            "SANDBOX_MODE": "true",
            "LOG_LEVEL": "WARNING",
            "ADVOWARE_BASE_URL": f"http://127.0.0.1:{ports['advoware']}",
            "ESPOCRM_BASE_URL": f"http://127.0.0.1:{ports['espocrm']}",
            "GOOGLE_API_ENDPOINT": f"http://127.0.0.1:{ports['google']}/calendar/v3/",
            "GOOGLE_BATCH_URI": f"http://127.0.0.1:{ports['google']}/batch/calendar/v3",
            "GOOGLE_TOKEN_URI": f"http://127.0.0.1:{ports['google']}/token",
            "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH": str(self.run_dir / "sa.json"),
            "GATEWAY_PORT": str(ports["gateway"]),
            "AIRFLOW_API_URL": f"http://127.0.0.1:{ports['airflow']}",
            "AIRFLOW_API_USERNAME": "admin",
            "AIRFLOW_API_PASSWORD": f"bench-{random.getrandbits(48):012x}",
            "POSTGRES_DB": self.hub_db,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_logs"]),
        }
        env.pop("AIRFLOW_HOME", None)
        env.update(self.extra_env)
        return env

    # -- life cycle -----------------------------------------------------------------------------
    def devstack(self, *args: str, timeout: float = 360) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack", *args],
            cwd=ROOT,
            env=self.env,
            text=True,
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def up(self, timeout_s: float = 300) -> OwnStack:
        # `kill` of the bench must still stop the stack: SIGTERM unwinds like Ctrl-C
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        dags = self.tmp / "dags"
        dags.mkdir()
        for dag_file in (ROOT / "dags").glob("*.py"):
            shutil.copy(dag_file, dags / dag_file.name)
        for name, source in self.extra_dags.items():
            (dags / name).write_text(source)
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.redis_aof else ["--appendonly", "no"]
        self.redis_proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.tmp),
                "--save",
                "",
                *aof,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.env = self._environment()
        started = self.devstack("up", "--timeout", str(int(timeout_s)), timeout=timeout_s + 60)
        if started.returncode != 0:
            self.down()
            raise RuntimeError(f"devstack up failed:\n{started.stdout[-3000:]}\n{started.stderr[-3000:]}")
        return self

    def down(self) -> None:
        import psycopg

        if self.env:
            self.devstack("down", timeout=240)
        if self.redis_proc is not None:
            self.redis_proc.terminate()
            try:
                self.redis_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.hub_db}" WITH (FORCE)')
        if os.environ.get("BENCH_KEEP_TMP"):
            print(f"  kept {self.tmp}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> OwnStack:
        return self.up()

    def __exit__(self, *exc: Any) -> None:
        self.down()

    # -- Airflow's metadata, read directly (costs the Airflow processes nothing) ----------------
    def metadata(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        path = self.airflow_home / "airflow.db"
        for _ in range(50):
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
                    return list(conn.execute(sql, args).fetchall())
            except sqlite3.OperationalError as exc:  # locked by the scheduler for a moment
                last = exc
                time.sleep(0.1)
        raise last
