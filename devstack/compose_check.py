"""`make compose-check` (`python -m devstack.compose_check`): the compose deployment started for real.

On this machine, as root, with podman and podman-compose (installed with apt where missing; the
podman-compose release pinned in requirements.txt): builds every image here (a Debian base from
mmdebstrap, kept between runs; PostgreSQL and Redis from Debian's packages, for the check only; the
platform's image from the Dockerfile on that base), starts docker-compose.yaml with the profile
`sandbox`, waits for every service's healthcheck and plays the demo scenario against the containers
from outside: parties through signed webhooks into Advoware, calendar runs through the gateway, the
Airflow UI and the status view, /metrics, the FAB roles. Then it layers docker-compose.celery.yaml
(two Celery workers: which container ran which task), restarts the scheduler and a worker during a
calendar run, stops and starts the whole stack with its volumes (hub links, dead letters and queued
parties survive) and tears everything down (`down -t 0`, volumes removed).

The firm's compose files are used as they are; the check adds only an override file of its own
(images of PostgreSQL and Redis built here, their ports published on 127.0.0.1 for the scenario's
checks) and a .env of its own, in a copy of the repository's files under .run/compose-check/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.compose_env import (
    APP_IMAGE,
    BASE_IMAGE,
    BASE_PACKAGES,
    CONTAINERS_CONF,
    CORE,
    DB_IMAGES,
    FIRST_START,
    HOST_VIEW,
    PROJECT,
    ROOT,
    STAGE,
    TOOLS,
    WORK,
    CheckFailed,
    pip_conf,
    poll,
    stage_project,
    write_env,
    write_override,
)


class Check:
    def __init__(self, keep: bool = False) -> None:
        self.t0 = time.monotonic()
        self.keep = keep
        self.findings: list[str] = []
        self.timings: dict[str, float] = {}
        self.celery = False

    # -- output --------------------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        for i, line in enumerate(str(msg).splitlines() or [""]):
            prefix = f"[{time.monotonic() - self.t0:5.0f}s] " if i == 0 else " " * 9
            print(prefix + line, flush=True)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.say(f"\n=== {name}")
        started = time.monotonic()
        yield
        self.timings[name] = time.monotonic() - started
        self.say(f"=== {name}: done in {self.timings[name]:.0f}s")

    # -- processes -----------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in HOST_VIEW}
        env["CONTAINERS_CONF"] = str(WORK / "containers.conf")
        return env

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        quiet: bool = False,
        check: bool = True,
        timeout: float = 1800,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=self.env(),
            text=True,
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise CheckFailed(
                f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        if not quiet and done.stdout.strip():
            self.say(done.stdout.strip()[-2000:])
        return done

    def podman(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(["podman", *args], **kw)

    def compose_files(self) -> list[str]:
        files = ["docker-compose.yaml"]
        if self.celery:
            files.append("docker-compose.celery.yaml")
        files.append("compose-check.override.yaml")
        return [a for f in files for a in ("-f", f)]

    def compose(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        exe = Path(sys.executable).parent / "podman-compose"
        argv = [str(exe), "-p", PROJECT, *self.compose_files(), "--profile", "sandbox", *args]
        return self.run(argv, cwd=STAGE, quiet=True, **kw)

    # -- 1. tools --------------------------------------------------------------------------------------
    def ensure_tools(self) -> None:
        missing = sorted(
            {
                pkg
                for tool, pkg in TOOLS.items()
                if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))
            }
        )
        if missing:
            self.say(f"apt-get install {' '.join(missing)}")
            self.run(["apt-get", "update", "-qq"], quiet=True)
            self.run(["apt-get", "install", "-y", "-qq", *missing], quiet=True)
        else:
            self.say("podman, runc, netavark, aardvark-dns, slirp4netns, uidmap, catatonit, mmdebstrap: installed")
        if not (Path(sys.executable).parent / "podman-compose").exists():
            raise CheckFailed("podman-compose is not in the virtualenv: run `make setup` (requirements.txt pins it)")
        WORK.mkdir(parents=True, exist_ok=True)
        (WORK / "containers.conf").write_text(CONTAINERS_CONF)
        version = self.run([str(Path(sys.executable).parent / "podman-compose"), "version"], quiet=True).stdout
        self.say(
            f"{self.podman('--version', quiet=True).stdout.strip()}, "
            f"{version.strip().splitlines()[0]} (CONTAINERS_CONF={WORK / 'containers.conf'})"
        )

    # -- 2. images -----------------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        return self.podman("image", "exists", ref, check=False, quiet=True).returncode == 0

    def build_base(self) -> None:
        if self.image_exists(BASE_IMAGE) and not os.environ.get("COMPOSE_CHECK_REBUILD_BASE"):
            self.say(f"{BASE_IMAGE}: cached (COMPOSE_CHECK_REBUILD_BASE=1 makes it anew)")
            return
        started = time.monotonic()
        tar = WORK / "rootfs.tar"
        self.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                '--aptopt=Acquire::Check-Valid-Until "false"',
                "bookworm",
                str(tar),
            ],
            quiet=True,
        )
        self.podman("import", str(tar), BASE_IMAGE, quiet=True)
        tar.unlink()
        self.say(
            f"{BASE_IMAGE}: made with mmdebstrap (minbase, bookworm) and podman import in "
            f"{time.monotonic() - started:.0f}s"
        )

    def build_args(self) -> list[str]:
        """Builds reach PyPI and Debian as the host does: its pip settings, its local indexes and the CA
        bundle of the TLS-intercepting proxy, mounted read-only at the same paths."""
        conf, mounts = pip_conf()
        (WORK / "pip.conf").write_text(conf)
        args = [
            "--network=host",
            "--format=docker",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "-v",
            f"{WORK / 'pip.conf'}:/etc/pip.conf:ro",
        ]
        for path in mounts:
            args += ["-v", f"{path}:{path}:ro"]
        return args

    def build(self, ref: str, context: Path) -> None:
        started = time.monotonic()
        self.podman("build", *self.build_args(), "-t", ref, str(context), quiet=True, timeout=3600)
        size = self.podman("image", "inspect", ref, "--format", "{{.Size}}", quiet=True).stdout.strip()
        self.say(f"{ref}: built in {time.monotonic() - started:.0f}s ({int(size or 0) / 1e6:.0f} MB)")

    def build_images(self, reuse_app: bool = False) -> None:
        self.build_base()
        for name, ref in DB_IMAGES.items():
            self.build(ref, ROOT / "devstack" / "images" / name)
        stage_project()
        if reuse_app:
            self.say(f"{APP_IMAGE}: reused (--skip-build)")
        else:
            self.build(APP_IMAGE, STAGE)

    # -- 3. up -----------------------------------------------------------------------------------------
    def containers(self) -> list[dict[str, Any]]:
        out = self.podman(
            "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format", "json", quiet=True
        ).stdout
        return json.loads(out or "[]")

    def service_of(self, c: dict[str, Any]) -> str:
        return str((c.get("Labels") or {}).get("com.docker.compose.service", c["Names"][0]))

    def health(self, name: str) -> str:
        """podman runs healthchecks with systemd timers; without systemd the check runs them itself."""
        inspect = json.loads(self.podman("inspect", name, quiet=True).stdout)[0]
        if not (inspect.get("Config") or {}).get("Healthcheck"):
            return "running" if inspect["State"]["Running"] else inspect["State"]["Status"]
        if not inspect["State"]["Running"]:
            return inspect["State"]["Status"]
        rc = self.podman("healthcheck", "run", name, check=False, quiet=True).returncode
        return "healthy" if rc == 0 else "starting"

    def wait_healthy(self, services: Sequence[str], timeout_s: float, exclude: Sequence[str] = ()) -> None:
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        seen: dict[str, str] = {}
        while True:
            pending = []
            names: dict[str, list[str]] = {}
            for c in self.containers():
                if c["Names"][0] in exclude:
                    continue
                names.setdefault(self.service_of(c), []).append(c["Names"][0])
            for svc in services:
                for name in names.get(svc, []) or [svc + " (no container yet)"]:
                    if name.endswith("(no container yet)"):
                        pending.append(name)
                        continue
                    state = self.health(name)
                    if state == "healthy" and seen.get(name) != "healthy":
                        self.say(f"  {name}: healthy after {time.monotonic() - started:.0f}s")
                    if state != "healthy":
                        pending.append(f"{name} ({state})")
                    seen[name] = state
            if not pending:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {p.split(' ')[0]}\n{self.logs(p.split(' ')[0])}" for p in pending if "no container" not in p
                )
                raise CheckFailed(f"not healthy after {timeout_s:.0f}s: {', '.join(pending)}\n{tails}")
            time.sleep(3)

    def logs(self, name: str, lines: int = 40) -> str:
        done = self.podman("logs", "--tail", str(lines), name, check=False, quiet=True)
        return (done.stdout + done.stderr)[-4000:]

    def up(self, services: Sequence[str] = (), timeout_s: float = 600, keep: Sequence[str] = ()) -> None:
        """`podman-compose up -d` in the order depends_on asks for. podman 4.3 (Debian 12) cannot wait for
        health (podman-compose skips service_healthy before podman 4.6) and fails to start a container
        whose --requires chain holds an exited one (airflow-init), so the check starts each stage with
        --no-deps and waits itself, as Docker Compose does from the depends_on conditions. `keep`: services
        left as they run (not made anew from a changed .env)."""
        if services:
            self.compose("up", "-d", "--no-deps", *services, timeout=900)
            self.wait_healthy(services, timeout_s)
            return
        base = [svc for svc in ("postgres", "redis", "sandbox") if svc not in keep]
        if base:
            self.compose("up", "-d", "--no-deps", *base, timeout=900)
            self.wait_healthy(base, timeout_s)
        self.compose("up", "-d", "--no-deps", "airflow-init", timeout=900)
        init = poll(
            lambda: next(
                (c for c in self.containers() if self.service_of(c) == "airflow-init" and c["State"] == "exited"), None
            ),
            timeout_s,
            "airflow-init to finish",
            3,
        )
        if init.get("ExitCode", 0) != 0:
            raise CheckFailed("airflow-init failed:\n" + self.logs(init["Names"][0]))
        self.say(f"  {init['Names'][0]}: exited 0 (PostgreSQL reached, migrations, users, pools, hub)")
        rest = CORE[2:6] + ["gateway"] + (["airflow-worker"] if self.celery else [])
        self.compose("up", "-d", "--no-deps", *rest, timeout=900)
        self.wait_healthy(rest, timeout_s)

    # -- the whole check -------------------------------------------------------------------------------
    def main(self, skip_build: bool = False) -> int:
        from devstack import compose_scenario as sc

        ok = False
        try:
            with self.phase("tools"):
                self.ensure_tools()
            with self.phase("images"):
                self.build_images(reuse_app=skip_build and self.image_exists(APP_IMAGE))
            write_env(STAGE)
            write_override(STAGE)
            self.compose("down", "-t", "0", "-v", check=False)  # a previous check's leftovers
            with self.phase("up: docker-compose.yaml, profile sandbox (LocalExecutor)"):
                self.up()
            with self.phase("scenario from outside"):
                sc.scenario(self)
            with self.phase("roles on the running api-server (FAB)"):
                sc.roles(self)
            with self.phase("celery: docker-compose.celery.yaml layered over it"):
                self.celery = True
                # The sandbox keeps its seeded data: .env's new webhook secret would make podman-compose create
                # it anew (its config hash changed) and an empty Advoware fails the calendar run's planning.
                self.up(keep=("postgres", "redis", "sandbox"))
                sc.celery_run(self)
            with self.phase("restart: the scheduler and one worker during a calendar run"):
                sc.restart_during_run(self)
            with self.phase("stop and start with the volumes (an upgrade)"):
                sc.stop_and_start(self)
            ok = True
        except Exception as exc:  # noqa: BLE001 - reported, then the stack is torn down
            self.say(f"\nFAILED: {type(exc).__name__}: {exc}")
            for c in self.containers():
                if c["State"] != "running" or c.get("Status", "").find("unhealthy") >= 0:
                    self.say(f"--- {c['Names'][0]} ({c['State']})\n{self.logs(c['Names'][0], 20)}")
        finally:
            if not self.keep:
                with self.phase("down -t 0, volumes removed"):
                    self.compose("down", "-t", "0", "-v", check=False)
                    left = [c["Names"][0] for c in self.containers()]
                    vols = [
                        v
                        for v in self.podman("volume", "ls", "--format", "{{.Name}}", quiet=True).stdout.split()
                        if v.startswith(PROJECT.replace("-", "") + "_") or v.startswith(PROJECT + "_")
                    ]
                    self.say(f"containers left: {left or 'none'}; volumes left: {vols or 'none'}")
                    if left or vols:
                        ok = False
        self.say(
            "\n=== timings: "
            + ", ".join(f"{k.split(':')[0]} {v:.0f}s" for k, v in self.timings.items())
            + f"; total {time.monotonic() - self.t0:.0f}s"
        )
        if self.findings:
            self.say("proven on the running containers:\n" + "\n".join(f"  - {f}" for f in self.findings))
        self.say("what the first real start found, and the fix:\n" + "\n".join(f"  - {f}" for f in FIRST_START))
        self.say("compose-check: PASSED" if ok else "compose-check: FAILED")
        return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.compose_check", description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack running (no down)")
    parser.add_argument("--skip-build", action="store_true", help="reuse the last app image")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("compose-check: runs as root (podman as root, apt-get install)", file=sys.stderr)
        return 2
    threading.current_thread().name = "compose-check"
    return Check(keep=args.keep).main(skip_build=args.skip_build)


if __name__ == "__main__":
    raise SystemExit(main())
