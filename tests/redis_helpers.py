"""A redis-server of a test's own (the machine's shared Redis keeps nothing on disk and must not be
stopped): durability, restarts, passwords."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from include.queue.party_queue import PartyQueue
from sandbox.runner import free_port


class OwnRedis:
    """A redis-server of this test on a free port, persisted with AOF + fsync always in `dir`."""

    def __init__(self, directory: Path, *extra_args: str, password: str | None = None) -> None:
        self.dir = directory
        self.port = free_port()
        self.password = password
        self.extra_args = [*extra_args, *(["--requirepass", password] if password else [])]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, password=self.password, socket_connect_timeout=0.2)

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                *self.extra_args,
            ],
            stdout=log,
            stderr=log,
        )
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"own redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=10)
        self.proc = None


def has_work(queue: PartyQueue, *, now: float | None = None) -> bool:
    """What the DAG's sensor looks at: ids ready, or claims whose lease has run out."""
    stats = queue.stats(now=now)
    return bool(stats.ready or stats.expired_claims)


def is_pending(queue: PartyQueue, party_id: str) -> bool:
    return queue.r.zscore(queue.keys.pending, party_id) is not None
