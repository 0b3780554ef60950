"""The local stack behind `make demo` / `make down`: sandbox, gateway and Airflow standalone.

    python -m devstack up [--timeout 180] [--executor local|celery]
                                                    start what is not running, wait until healthy
    python -m devstack scale-scenario       the Celery stack's demo: which worker ran what
    python -m devstack scenario             the demo: parties and calendar through the stack
    python -m devstack down [--services]    stop exactly what `up` started
    python -m devstack status               what runs, and is it healthy
    python -m devstack migrate              hub migrations if PostgreSQL answers (make setup)

Everything comes from the settings (.env): Airflow listens on the port of AIRFLOW_API_URL, the
gateway on GATEWAY_PORT, and in sandbox mode the sandboxes on the ports of ADVOWARE_BASE_URL,
GOOGLE_API_ENDPOINT and ESPOCRM_BASE_URL. DEVSTACK_RUN_DIR (default .run) holds PID files and logs,
DEVSTACK_AIRFLOW_HOME (default .airflow) the Airflow home, so a second stack (the e2e test) can
run beside the demo; DEVSTACK_DAGS_FOLDER (default dags/) lets a bench add DAGs of its own.

`--executor celery` (or DEVSTACK_EXECUTOR=celery; `make scale-demo`) runs Airflow as separate
components instead of `airflow standalone`: api-server, scheduler, dag-processor, triggerer and
DEVSTACK_CELERY_WORKERS (2) Celery workers, each naming itself (AIRFLOW_WORKER_NAME = worker-<n>), on
the machine's PostgreSQL (metadata database `<POSTGRES_DB>_airflow`, created and migrated by `up`)
and Redis (broker on the work queue's database number + 1); Airflow home .airflow-celery.

In sandbox mode `up` also prepares the demo (devstack/demo.py): a sandbox it starts is
seeded with a small firm (after clearing the hub and queue of a previous demo), EspoCRM's three
webhooks are registered through `kanzlei-sync register-webhooks` before the gateway starts, and the
gateway gets their secrets (ESPOCRM_WEBHOOK_SECRET, kept in the run dir, never written to .env);
EspoCRM's sender flushes every 2 s. Then the Airflow pools are created.

Each process starts in its own session and carries DEVSTACK_MARKER=<id of this run dir> in its
environment; `down` signals the process groups it recorded, then removes any process that still
carries the marker (Airflow forks workers). Nothing else is touched. PostgreSQL and Redis are the
machine's: `up` starts them if they are down, `down` leaves them running unless --services.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx
import psutil

from devstack import airflow_env
from devstack import demo as devstack_demo
from devstack.scale import EMPLOYEES, seed_firm
from include.airflow_env import write_passwords_file
from include.airflow_provider.executors.worker_name import ENV as WORKER_NAME_ENV  # a plain module: no Airflow import
from include.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _port(url: str, default: int) -> int:
    parts = urlsplit(url)
    if parts.hostname in LOCAL_HOSTS and parts.port:
        return parts.port
    return default


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    health: list[str]
    ports: list[int]


EXECUTORS = ("local", "celery")
SCENARIO_HEALTH_WAIT_S = 90.0


@dataclass
class Stack:
    settings: Settings
    root: Path = ROOT
    run_dir: Path = field(default_factory=lambda: Path(os.environ.get("DEVSTACK_RUN_DIR", ROOT / ".run")))
    executor: str = field(default_factory=lambda: os.environ.get("DEVSTACK_EXECUTOR", "local"))
    airflow_home: Path | None = None  # default: DEVSTACK_AIRFLOW_HOME, else .airflow (.airflow-celery)
    dags_folder: Path = field(default_factory=lambda: Path(os.environ.get("DEVSTACK_DAGS_FOLDER", ROOT / "dags")))
    out: TextIO = sys.stdout

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, not {self.executor!r}")
        if self.airflow_home is None:
            default = ROOT / (".airflow" if self.executor == "local" else ".airflow-celery")
            self.airflow_home = Path(os.environ.get("DEVSTACK_AIRFLOW_HOME", default))

    # -- paths and identity ------------------------------------------------------------------
    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    def marker(self) -> str:
        path = self.run_dir / "devstack-marker"
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(uuid.uuid4().hex)
        return path.read_text().strip()

    def say(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)

    # -- what to run -------------------------------------------------------------------------
    def sandbox_ports(self) -> dict[str, int]:
        s = self.settings
        return {
            "SANDBOX_ADVOWARE_PORT": _port(s.advoware.base_url, 8101),
            "SANDBOX_GOOGLE_PORT": _port(s.google.api_endpoint, 8102),
            "SANDBOX_ESPOCRM_PORT": _port(s.espocrm.base_url, 8103),
        }

    def services(self) -> list[Service]:
        s = self.settings
        bin_dir = str(Path(sys.executable).parent)  # not resolved: the venv's bin, not the base python
        base = {
            **os.environ,
            "DEVSTACK_MARKER": self.marker(),
            "PYTHONUNBUFFERED": "1",
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        }
        out: list[Service] = []
        if s.sandbox_mode:
            ports = self.sandbox_ports()
            env = {**base, **{k: str(v) for k, v in ports.items()}}
            # EspoCRM's sender runs by itself, as the real one's scheduled job does.
            env.setdefault("SANDBOX_ESPOCRM_AUTO_FLUSH_S", "2")
            out.append(
                Service(
                    "sandbox",
                    [sys.executable, "-m", "sandbox"],
                    env,
                    [f"http://127.0.0.1:{p}/healthz" for p in ports.values()],
                    list(ports.values()),
                )
            )
        gw = s.gateway.port
        gw_env = dict(base)
        secret = devstack_demo.webhook_secret(self.run_dir) if s.sandbox_mode else None
        if secret:  # the registered webhooks' secrets, and the .env one (a developer's signed curl)
            own = s.espocrm.webhook_secret.get_secret_value()
            gw_env["ESPOCRM_WEBHOOK_SECRET"] = f"{secret},{own}" if own else secret
        out.append(
            Service(
                "gateway", [sys.executable, "-m", "webhook_gateway"], gw_env, [f"http://127.0.0.1:{gw}/healthz"], [gw]
            )
        )
        af_env = {
            **base,
            **airflow_env.build_env(
                s,
                root=self.root,
                run_dir=self.run_dir,
                airflow_home=self.airflow_home,
                dags_folder=self.dags_folder,
                executor=self.executor,
            ),
        }
        af_port = airflow_env.api_port(s)
        airflow = os.path.join(bin_dir, "airflow")
        api_health = [f"http://127.0.0.1:{af_port}/api/v2/version"]
        if self.executor == "local":
            # airflow standalone starts its components as `airflow ...` from PATH: the venv's bin first.
            out.append(Service("airflow", [airflow, "standalone"], af_env, api_health, [af_port]))
            return out
        out.append(Service("airflow-apiserver", [airflow, "api-server"], af_env, api_health, [af_port]))
        for component in ("scheduler", "dag-processor", "triggerer"):
            out.append(Service(f"airflow-{component}", [airflow, component], af_env, [], []))
        for n in range(1, celery_workers() + 1):
            name = f"worker-{n}"
            out.append(
                Service(
                    f"airflow-{name}",
                    [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"],
                    {**af_env, WORKER_NAME_ENV: name},
                    [],
                    [],
                )
            )
        return out

    # -- PID files ---------------------------------------------------------------------------
    def _pidfile(self, name: str) -> Path:
        return self.pid_dir / f"{name}.json"

    def running(self, name: str) -> psutil.Process | None:
        """The recorded process if it is still the one we started (PIDs get reused)."""
        path = self._pidfile(name)
        if not path.exists():
            return None
        rec = json.loads(path.read_text())
        try:
            proc = psutil.Process(rec["pid"])
            if abs(proc.create_time() - rec["create_time"]) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except psutil.Error:
            pass
        return None

    def start(self, svc: Service) -> psutil.Process:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{svc.name}.log"
        with open(log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} devstack starts {svc.name}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                svc.argv,
                cwd=self.root,
                env=svc.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = psutil.Process(popen.pid)
        self._pidfile(svc.name).write_text(
            json.dumps({"pid": popen.pid, "create_time": proc.create_time(), "argv": svc.argv, "log": str(log_path)})
        )
        return proc

    # -- machine services (PostgreSQL, Redis) --------------------------------------------------
    def _pg_up(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.settings.postgres.dsn("postgres"), connect_timeout=3).close()
            return True
        except psycopg.Error:
            return False

    def _redis_up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.settings.redis_url, socket_timeout=3).ping())
        except redis.RedisError:
            return False

    def _record_service(self, name: str, detail: dict[str, object]) -> None:
        path = self.run_dir / "started-services.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = detail
        path.write_text(json.dumps(data))

    def ensure_postgres(self, deadline: float) -> None:
        if self._pg_up():
            return
        if self.settings.postgres.host not in LOCAL_HOSTS or not shutil.which("pg_ctlcluster"):
            raise RuntimeError(
                f"PostgreSQL at {self.settings.postgres.host}:{self.settings.postgres.port} "
                "does not answer; start it and retry"
            )
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        self.say(f"starting PostgreSQL {version}/main")
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True)
        self._record_service("postgres", {"version": version})
        while not self._pg_up():
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL did not come up")
            time.sleep(0.5)

    def ensure_redis(self, deadline: float) -> None:
        if self._redis_up():
            return
        parts = urlsplit(self.settings.redis_url)
        if parts.hostname not in LOCAL_HOSTS or not shutil.which("redis-server"):
            raise RuntimeError(f"Redis at {parts.hostname}:{parts.port} does not answer; start it and retry")
        port = parts.port or 6379
        pidfile = self.run_dir / f"redis-{port}.pid"
        self.say(f"starting Redis on 127.0.0.1:{port}")
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--pidfile",
                str(pidfile),
            ],
            check=True,
        )
        while not self._redis_up():
            if time.monotonic() > deadline:
                raise TimeoutError("Redis did not come up")
            time.sleep(0.2)
        self._record_service("redis", {"pidfile": str(pidfile), "port": port})

    def migrate(self) -> None:
        from include.hub.db import migrate

        migrate(self.settings.postgres.dsn())

    def write_sandbox_key(self) -> None:
        if not self.settings.sandbox_mode or not self.settings.google.calendar_service_account_path:
            return
        path = Path(self.settings.google.calendar_service_account_path)
        path = path if path.is_absolute() else self.root / path
        if not path.exists():
            env = {**os.environ, "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH": str(path)}
            subprocess.run(
                [sys.executable, "-m", "sandbox", "write-key"],
                cwd=self.root,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )

    # -- health ------------------------------------------------------------------------------
    @staticmethod
    def healthy(url: str, timeout_s: float = 2.0) -> bool:
        try:
            return httpx.get(url, timeout=timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    def _tail(self, name: str, lines: int = 25) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait_healthy(self, services: list[Service], deadline: float, *, quiet: bool = False) -> None:
        pending = {svc.name: list(svc.health) for svc in services}
        while pending:
            for name, urls in list(pending.items()):
                if self.running(name) is None:
                    raise RuntimeError(f"{name} exited during start-up; last log lines:\n{self._tail(name)}")
                urls[:] = [u for u in urls if not self.healthy(u)]
                if not urls:
                    if not quiet:
                        self.say(f"  {name}: healthy")
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                details = "\n".join(f"--- {n}\n{self._tail(n)}" for n in pending)
                raise TimeoutError(f"not healthy before the deadline: {', '.join(pending)}\n{details}")
            time.sleep(1.0)

    # -- Airflow -----------------------------------------------------------------------------
    def airflow_token(self) -> str:
        api = self.settings.airflow_api
        port = airflow_env.api_port(self.settings)
        r = httpx.post(
            f"http://127.0.0.1:{port}/auth/token",
            timeout=10,
            json={"username": api.username, "password": api.password.get_secret_value()},
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def unpause_dags(self) -> list[str]:
        """DAGs are created unpaused; this also unpauses ones someone paused in an earlier demo."""
        port = airflow_env.api_port(self.settings)
        headers = {"Authorization": f"Bearer {self.airflow_token()}"}
        base = f"http://127.0.0.1:{port}/api/v2/dags"
        r = httpx.get(base, params={"paused": "true", "limit": 1000}, headers=headers, timeout=10)
        r.raise_for_status()
        ids = [d["dag_id"] for d in r.json().get("dags", [])]
        for dag_id in ids:
            httpx.patch(
                f"{base}/{dag_id}",
                params={"update_mask": "is_paused"},
                json={"is_paused": False},
                headers=headers,
                timeout=10,
            ).raise_for_status()
        return ids

    # -- commands ----------------------------------------------------------------------------
    def _start_if_needed(self, svc: Service) -> bool:
        """Start `svc` unless it runs; True when it was started now."""
        if self.running(svc.name):
            self.say(f"{svc.name}: already running")
            return False
        busy = [p for p in svc.ports if _port_in_use(p)]
        if busy:
            raise RuntimeError(
                f"{svc.name}: port(s) {busy} already in use by another program; stop it or change the port in .env"
            )
        self.start(svc)
        self.say(f"{svc.name}: started (log {self.log_dir / (svc.name + '.log')})")
        return True

    def up(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        up_started = datetime.now(UTC).isoformat()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pg = self.settings.postgres
        if self.settings.sandbox_mode:  # said before anything is touched
            self.say(
                f"hub database: {pg.db} on {pg.host}:{pg.port} (POSTGRES_DB in .env); a sandbox that starts "
                "fresh empties its tables"
            )
        self.ensure_postgres(deadline)
        self.ensure_redis(deadline)
        self.migrate()
        self.write_sandbox_key()
        write_passwords_file(self.run_dir / "airflow-passwords.json", self.settings)
        services = {svc.name: svc for svc in self.services()}
        airflow_parts = [name for name in services if name.startswith("airflow")]
        try:
            if self.executor == "celery":
                self.migrate_airflow_metadata(services["airflow-scheduler"].env)
            # Airflow is the slowest to come up: it starts first and comes up while the sandbox is
            # prepared; the gateway waits for the webhook secrets.
            fresh = {
                name
                for name in (*airflow_parts, "sandbox")
                if name in services and self._start_if_needed(services[name])
            }
            fresh_sandbox = "sandbox" in fresh
            if "sandbox" in services:
                self.wait_healthy([services["sandbox"]], deadline)
                self.prepare_sandbox(fresh_sandbox=fresh_sandbox)
            services["gateway"] = next(s for s in self.services() if s.name == "gateway")  # with the secrets
            self._start_if_needed(services["gateway"])
            self.wait_healthy([s for s in services.values() if s.name != "sandbox"], deadline)
        except Exception:
            self.say("start-up failed; stopping what was started")
            self.down()
            raise
        self.prepare_airflow(stale_before=up_started if fresh_sandbox else None)
        if self.executor == "celery":
            self.wait_for_workers(services["airflow-scheduler"].env, deadline)
        self.summary()

    def migrate_airflow_metadata(self, env: dict[str, str]) -> None:
        """The Celery stack's metadata database: created on the hub's server if missing, then migrated."""
        import psycopg

        name = airflow_env.metadata_db(self.settings)
        with psycopg.connect(self.settings.postgres.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
        self.say(f"Airflow metadata: PostgreSQL database {name}, migrating")
        done = subprocess.run(
            [env["PATH"].split(os.pathsep)[0] + "/airflow", "db", "migrate"],
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def wait_for_workers(self, env: dict[str, str], deadline: float) -> list[str]:
        """Until every Celery worker answers a ping on the broker (tasks sent earlier would all go to
        the first one up)."""
        wanted = celery_workers()
        script = (
            "import json; from airflow.providers.celery.executors.celery_executor_utils import app; "
            "print(json.dumps(sorted(n for r in app.control.ping(timeout=2) for n in r)))"
        )
        names: list[str] = []
        while time.monotonic() < deadline:
            done = subprocess.run(
                [sys.executable, "-c", script],
                cwd=self.root,
                env=env,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=120,
            )
            lines = done.stdout.strip().splitlines()
            names = json.loads(lines[-1]) if done.returncode == 0 and lines else []
            if len(names) >= wanted:
                self.say(f"  Celery workers answering: {', '.join(names)}")
                return names
            time.sleep(2)
        raise TimeoutError(f"only {len(names)} of {wanted} Celery workers answer: {names}")

    def prepare_sandbox(self, *, fresh_sandbox: bool) -> None:
        """Seed a sandbox that started now, and make sure EspoCRM's webhooks point at the gateway."""
        urls = devstack_demo.sandbox_urls(self.sandbox_ports())
        if fresh_sandbox:
            devstack_demo.reset_previous_demo(self.settings, self.say)
            if self.executor == "celery":  # the scale firm, once (make scale-demo's scenario runs on it)
                seed_firm(self, EMPLOYEES, reset=False)
            else:
                devstack_demo.seed_sandboxes(urls, self.say)
        _, registered = devstack_demo.ensure_webhooks(self.settings, self.run_dir, self.gateway_url(), self.say)
        if registered and self.running("gateway"):
            self.say("gateway: restarting with the new webhook secrets")
            self.stop_one("gateway")

    def prepare_airflow(self, stale_before: str | None = None) -> None:
        """Unpause the DAGs, create the pools, and (after a sandbox restart) end the runs of the previous
        demo; the stack runs even if this fails (say why)."""

        def prepare() -> None:  # every step is idempotent: repeated while Airflow's SQLite is busy
            token = self.airflow_token()
            if stale_before:
                devstack_demo.fail_stale_runs(self.airflow_url(), token, stale_before, self.say)
            unpaused = self.unpause_dags()
            if unpaused:
                self.say(f"unpaused DAGs: {', '.join(unpaused)}")
            devstack_demo.ensure_pools(self.airflow_url(), token, self.say)

        try:
            devstack_demo.airflow_retrying(prepare)
        except httpx.HTTPError as exc:
            self.say(f"warning: could not prepare Airflow (unpause DAGs, pools): {exc}")

    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway.port}"

    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{airflow_env.api_port(self.settings)}"

    def scenario(self) -> int:
        """The demo scenario on the running stack: parties (webhooks) and the calendar sync."""
        if not self.settings.sandbox_mode:
            self.say("scenario: only in sandbox mode (SANDBOX_MODE=true); it writes to the services")
            return 1
        services = self.services()
        down = [svc.name for svc in services if self.running(svc.name) is None]
        if not down:
            # Running but busy (a loaded machine, Airflow's SQLite): give them a minute to answer.
            try:
                self.wait_healthy(services, time.monotonic() + SCENARIO_HEALTH_WAIT_S, quiet=True)
            except (RuntimeError, TimeoutError) as exc:
                down = [str(exc).splitlines()[0]]
        if down:
            self.say(f"scenario: not running or not healthy: {', '.join(down)} (make demo starts them)")
            return 1
        urls = devstack_demo.sandbox_urls(self.sandbox_ports())
        started = time.monotonic()
        failed = []
        for name, part in (
            ("parties", lambda: devstack_demo.run_party_part(self.settings, urls, self.gateway_url(), self.say)),
            (
                "calendar",
                lambda: devstack_demo.run_calendar_part(
                    self.settings, urls, self.gateway_url(), self.airflow_url(), self.say
                ),
            ),
        ):
            try:
                part()
            except Exception as exc:  # one part failing must not hide the other
                failed.append(name)
                self.say(f"{name} demo FAILED: {type(exc).__name__}: {exc}")
        self.say(
            f"\nscenario finished in {time.monotonic() - started:.0f}s"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + f" (Airflow UI {self.airflow_url()})"
        )
        return 1 if failed else 0

    def summary(self) -> None:
        s = self.settings
        af = f"http://127.0.0.1:{airflow_env.api_port(s)}"
        login = f"{s.airflow_api.username} / {s.airflow_api.password.get_secret_value()}"
        lines = [
            "",
            f"Airflow UI   {af}   login: {login}"
            + (f"   (CeleryExecutor, {celery_workers()} workers)" if self.executor == "celery" else ""),
            f"Gateway      http://127.0.0.1:{s.gateway.port}   (/docs, /healthz, /metrics)",
        ]
        if s.sandbox_mode:
            p = self.sandbox_ports()
            lines.append(
                f"Sandbox      Advoware :{p['SANDBOX_ADVOWARE_PORT']}"
                f"  Google :{p['SANDBOX_GOOGLE_PORT']}  EspoCRM :{p['SANDBOX_ESPOCRM_PORT']}"
            )
        lines += [f"Logs         {self.log_dir}", "Stop with    make down", ""]
        self.say("\n".join(lines))

    def _leaders(self) -> dict[int, float]:
        """Session ids we started (pid of each recorded process) and when they started."""
        out: dict[int, float] = {}
        for path in self.pid_dir.glob("*.json") if self.pid_dir.exists() else []:
            rec = json.loads(path.read_text())
            out[int(rec["pid"])] = float(rec["create_time"])
        return out

    def ours(self) -> list[psutil.Process]:
        """Every live process of this stack: in a session we started, or carrying our marker.

        The session catches processes that rewrite their environment block (setproctitle does),
        the marker catches any that left the session; create times guard against reused ids.
        """
        marker = self.marker()
        leaders = self._leaders()
        found = []
        for proc in psutil.process_iter(["pid", "create_time", "status"]):
            try:
                if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                sid = os.getsid(proc.pid)
                if sid in leaders and proc.info["create_time"] >= leaders[sid] - 0.01:
                    found.append(proc)
                elif proc.environ().get("DEVSTACK_MARKER") == marker:
                    found.append(proc)
            except (psutil.Error, OSError):
                continue
        return found

    def stop_one(self, name: str, grace_s: float = 15.0) -> None:
        """Stop one recorded service (its whole process group) and forget its PID file."""
        proc = self.running(name)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            group = [proc, *proc.children(recursive=True)]
            _, alive = psutil.wait_procs(group, timeout=grace_s)
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.kill()
        self._pidfile(name).unlink(missing_ok=True)

    def down(self, *, services: bool = False, grace_s: float = 30.0) -> None:
        names = sorted(p.stem for p in self.pid_dir.glob("*.json")) if self.pid_dir.exists() else []
        for name in names:
            proc = self.running(name)
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)  # its own session: pgid == pid
                except ProcessLookupError:
                    pass
                self.say(f"{name}: stopping (pid {proc.pid})")
        # Give the process groups time to shut down cleanly; then signal stragglers one by one.
        started = time.monotonic()
        nudged = False
        left = self.ours()
        while left and time.monotonic() - started < grace_s:
            if not nudged and time.monotonic() - started > 5:
                for proc in left:
                    with contextlib.suppress(psutil.Error):
                        proc.terminate()
                nudged = True
            time.sleep(0.3)
            left = self.ours()
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
                self.say(f"killed pid {proc.pid} after {grace_s:.0f}s")
        psutil.wait_procs(left, timeout=5)
        for name in names:
            self._pidfile(name).unlink(missing_ok=True)
        if services:
            self._stop_services()

    def _stop_services(self) -> None:
        path = self.run_dir / "started-services.json"
        if not path.exists():
            return
        data = json.loads(path.read_text())
        if "redis" in data:
            pidfile = Path(data["redis"]["pidfile"])
            if pidfile.exists():
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
                self.say("Redis: stopped (started by devstack)")
        if "postgres" in data:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", data["postgres"]["version"], "main", "stop"], check=False
            )
            self.say("PostgreSQL: stopped (started by devstack)")
        path.unlink()

    def status(self) -> int:
        bad = 0
        for svc in self.services():
            proc = self.running(svc.name)
            ok = proc is not None and all(self.healthy(u) for u in svc.health)
            bad += not ok
            state = f"pid {proc.pid}" if proc else "not running"
            self.say(f"{svc.name:8} {state:16} {'healthy' if ok else 'NOT healthy'}")
        return 1 if bad else 0


def _executor_file() -> Path:
    return Path(os.environ.get("DEVSTACK_RUN_DIR", ROOT / ".run")) / "devstack-executor"


def recorded_executor() -> str | None:
    """What `up` started (down, status and the scenarios follow it)."""
    path = _executor_file()
    return path.read_text().strip() if path.exists() else None


def record_executor(stack: Stack) -> None:
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    _executor_file().write_text(stack.executor)


def celery_workers() -> int:
    return max(1, int(os.environ.get("DEVSTACK_CELERY_WORKERS", "2")))


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
