"""A webhook receiver standing in for the gateway's notification route: it records what Google (the
sandbox) posts and answers with scripted statuses; and a poll-with-deadline helper."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names as sent
    body: bytes
    at: float  # time.monotonic() on arrival


class Receiver:
    """POSTs land in `received`; `statuses` (popped in order) scripts the answers, then `default_status`.
    `gate`, when cleared, holds every answer until it is set again."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.default_status = 200
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                receiver.gate.wait(timeout=30)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/google/calendar"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def of(self, channel_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.headers.get("X-Goog-Channel-ID") == channel_id]


def wait_for(probe: Callable[[], T | None], *, timeout_s: float = 15.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@contextmanager
def fake_employee_dag_airflow() -> Iterator[Any]:
    """A fake Airflow API that knows the targeted-run DAG; its URL in `app.state.url`."""
    from include.dag_ids import CALENDAR_EMPLOYEE_SYNC_DAG
    from sandbox.runner import ServerThread
    from tests.integration.test_airflow_api import make_fake_airflow

    app = make_fake_airflow(dags=(CALENDAR_EMPLOYEE_SYNC_DAG,))
    with ServerThread(app) as server:
        app.state.url = server.url
        yield app
