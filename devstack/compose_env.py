"""What the compose check (devstack/compose_check.py) and its scenario (devstack/compose_scenario.py) share:
the images, ports, users and secrets of the checked stack, and helpers without state (the staged
project's .env and override, webhook signatures, polling)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".run" / "compose-check"
STAGE = WORK / "project"
PROJECT = "kanzlei-check"
BASE_IMAGE = "localhost/kanzlei-base:bookworm"
APP_IMAGE = "localhost/kanzlei-sync:check"
DB_IMAGES = {"postgres": "localhost/kanzlei-check-postgres:15", "redis": "localhost/kanzlei-check-redis:7"}
BASE_PACKAGES = [
    "python3.11",
    "python3.11-venv",
    "python3-venv",
    "ca-certificates",
    "curl",
    "dumb-init",
    "procps",
    "tzdata",
    "netbase",
]
# command or file -> Debian package; installed with apt when missing
TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "/usr/lib/podman/netavark": "netavark",
    "/usr/lib/podman/aardvark-dns": "aardvark-dns",
    "slirp4netns": "slirp4netns",
    "newuidmap": "uidmap",
    "catatonit": "catatonit",
    "mmdebstrap": "mmdebstrap",
    "iptables": "iptables",
}
# Without these the defaults fail here: crun refuses the machine's cgroup layout, the default ulimits exceed
# what the machine allows, no systemd for cgroups or events. Used through CONTAINERS_CONF only.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
"""
OFFSET = int(os.environ.get("COMPOSE_CHECK_PORT_OFFSET", "10000"))
PORTS = {
    "gateway": 8000 + OFFSET,
    "airflow": 8080 + OFFSET,
    "advoware": 8101 + OFFSET,
    "google": 8102 + OFFSET,
    "espocrm": 8103 + OFFSET,
    "postgres": 5432 + OFFSET,
    "redis": 6379 + OFFSET,
}
GATEWAY_IN_NETWORK = f"http://gateway:{PORTS['gateway']}"
USERS = {"anna": ("operator", "anna-Check-1"), "otto": ("viewer", "otto-Check-2"), "root": ("admin", "root-Check-3")}
GATEWAY_USER, GATEWAY_PASSWORD = "kanzlei-gateway", "gateway-Check-4"
API_TOKEN, READ_TOKEN, WEBHOOK_SECRET = "check-gateway-token", "check-read-token", "check-webhook-secret"
CORE = [
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "gateway",
    "sandbox",
]


# What the first real start of the compose files found, and how each was fixed (printed at the end).
FIRST_START = [
    "airflow-init raced PostgreSQL where depends_on cannot wait for health (podman-compose before podman 4.6): "
    "its first step is now `airflow db check --retry 60`",
    "a fresh deployment had no pools google_calendar_api / advoware_api, so calendar tasks would never start: "
    "airflow-init creates the missing ones (`kanzlei-sync airflow pools`, an administrator's resize stays)",
    "the compose files replaced the image's entry point (`entrypoint:`), so no init process forwarded signals: "
    "services set `command:` only, the Dockerfile's ENTRYPOINT is dumb-init",
    "on Debian 12's Python 3.11.2 redis' asyncio client needs async-timeout (pinned with its marker); "
    "gcloud-aio-auth's metadata asks for 3.11.3 (the check's pip ignores it; the official image is newer)",
    "PostgreSQL initialised in the C locale is SQL_ASCII, which psycopg 3 answers in bytes: the check's "
    "PostgreSQL image initialises UTF8 like the official one",
    "./.run (the sandbox's key, the Google key) must be writable by the containers' user AIRFLOW_UID, gid 0: "
    "README says so (chown 50000:0 .run, or AIRFLOW_UID=$(id -u))",
    "the sandbox's host ports were fixed: COMPOSE_SANDBOX_*_PORT, so the stack runs beside another",
    "the Celery workers never reported healthy: podman-compose joined the scheduler's and the worker's "
    "healthcheck lists through `extends` (both are strings now), podman runs a healthcheck without $HOSTNAME "
    "(the ping names `celery@$(hostname)`), and a 1 s ping saw no reply on a loaded machine (10 s now)",
    "a changed .env (the webhook secrets) makes podman-compose create the sandbox anew, empty: the check "
    "leaves postgres, redis and the sandbox running when it layers docker-compose.celery.yaml",
    "podman 4.3 fails to start a container whose --requires chain holds an exited container (airflow-init), "
    "and without systemd runs no healthchecks: the check starts the stages in depends_on's order with "
    "--no-deps and runs each healthcheck itself (`podman healthcheck run`)",
]


class CheckFailed(RuntimeError):
    pass


class ComposeCheck(Protocol):
    """What the scenario uses of compose_check.Check (which plays it)."""

    findings: list[str]

    def say(self, msg: str) -> None: ...
    def podman(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]: ...
    def compose(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]: ...
    def containers(self) -> list[dict[str, Any]]: ...
    def service_of(self, c: dict[str, Any]) -> str: ...
    def wait_healthy(self, services: Sequence[str], timeout_s: float, exclude: Sequence[str] = ()) -> None: ...
    def up(self, services: Sequence[str] = (), timeout_s: float = 600, keep: Sequence[str] = ()) -> None: ...


# -- helpers without state ------------------------------------------------------------------------------
# The host's view of the published ports (the scenario's Settings); never passed to podman-compose.
HOST_VIEW: dict[str, str] = {}


def pip_conf() -> tuple[str, list[str]]:
    """The host's pip settings as one pip.conf, and the local paths they name (to mount)."""
    keys = ("index-url", "extra-index-url", "find-links", "cert", "trusted-host", "timeout", "default-timeout")
    values: dict[str, str] = {}
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name, _, value = line.partition("=")
        key = name.rsplit(".", 1)[-1]
        if key in keys and value:
            values[key] = value.strip().strip("'\"")
    for key in keys:
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            values[key] = env
    mounts = set()
    for key in ("extra-index-url", "index-url", "find-links", "cert"):
        for item in values.get(key, "").split():
            path = item.removeprefix("file://")
            if path.startswith("/") and Path(path).exists():
                mounts.add(str(Path(path).parent if key.endswith("url") and path.endswith("/simple") else path))
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.exists():
        values.setdefault("cert", str(ca))
        mounts.add(str(ca))
    # Debian bookworm's Python is 3.11.2; one pinned package (gcloud-aio-auth 5.6.0, of the Google provider)
    # asks for >=3.11.3 in its metadata. The official image's Python is newer and needs no such switch.
    values["ignore-requires-python"] = "true"
    conf = "[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(values.items()))
    return conf, sorted(mounts)


def stage_project() -> None:
    """The repository's files (tracked and new, not ignored) in STAGE: a clean build context."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    if STAGE.exists():
        shutil.rmtree(STAGE)
    for rel in filter(None, files):
        src = ROOT / rel
        if not src.is_file():
            continue
        dst = STAGE / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    # What README's deployment section tells a firm: ./.run belongs to the containers' user (AIRFLOW_UID, gid 0).
    run = STAGE / ".run"
    run.mkdir(mode=0o770)
    os.chown(run, int(os.environ.get("AIRFLOW_UID", "50000")), 0)


def write_env(stage: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The check's .env: .env.example (the sandbox's credentials) with the check's ports, logins and tokens."""
    values = {
        "KANZLEI_IMAGE": APP_IMAGE,
        "SANDBOX_MODE": "true",
        "POSTGRES_DB": "sync_hub",
        "AIRFLOW_PORT": str(PORTS["airflow"]),
        "GATEWAY_PORT": str(PORTS["gateway"]),
        "COMPOSE_SANDBOX_ADVOWARE_PORT": str(PORTS["advoware"]),
        "COMPOSE_SANDBOX_GOOGLE_PORT": str(PORTS["google"]),
        "COMPOSE_SANDBOX_ESPOCRM_PORT": str(PORTS["espocrm"]),
        "AIRFLOW_API_USERNAME": GATEWAY_USER,
        "AIRFLOW_API_PASSWORD": GATEWAY_PASSWORD,
        "AIRFLOW_UI_USERS": ",".join(f"{u}:{role}:{pw}" for u, (role, pw) in USERS.items()),
        "GATEWAY_API_TOKEN": API_TOKEN,
        "GATEWAY_READ_TOKEN": READ_TOKEN,
        "GATEWAY_PUBLIC_URL": GATEWAY_IN_NETWORK,
        "ESPOCRM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "AIRFLOW__API_AUTH__JWT_SECRET": hashlib.sha256(os.urandom(32)).hexdigest(),
        "SYNC_ANONYMIZE": "true",
        "LOG_LEVEL": "INFO",
    }
    values.update(extra or {})
    lines = [ln for ln in (ROOT / ".env.example").read_text().splitlines() if ln.split("=", 1)[0].strip() not in values]
    (stage / ".env").write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n")
    return values


def set_env_value(stage: Path, key: str, value: str) -> None:
    lines = [ln for ln in (stage / ".env").read_text().splitlines() if not ln.startswith(key + "=")]
    (stage / ".env").write_text("\n".join([*lines, f"{key}={value}"]) + "\n")


def write_override(stage: Path) -> None:
    """The check's images of PostgreSQL and Redis (nothing is pulled) and their ports on 127.0.0.1 for
    the scenario's look at the hub and the queue. The firm's compose files stay as they are."""
    text = f"""# Written by devstack/compose_check.py for `make compose-check` only.
services:
  postgres:
    image: {DB_IMAGES["postgres"]}
    ports: ["127.0.0.1:{PORTS["postgres"]}:5432"]
  redis:
    image: {DB_IMAGES["redis"]}
    ports: ["127.0.0.1:{PORTS["redis"]}:6379"]
"""
    (stage / "compose-check.override.yaml").write_text(text)


def sign(body: bytes, secret: str, webhook_id: str = "check") -> str:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return base64.b64encode(f"{webhook_id}:{mac}".encode()).decode()


def poll(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        last: Exception | None
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then named
            result, last = None, exc
        else:
            last = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout_s:.0f}s waiting for {what}" + (f": {last}" if last else ""))
        time.sleep(every_s)
