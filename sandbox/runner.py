"""Run ASGI apps with uvicorn in a background thread (tests, benches) or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A uvicorn server on 127.0.0.1 in a daemon thread; `stop()` shuts it down cleanly."""

    def __init__(
        self, app: Any, port: int | None = None, *, log_level: str = "warning", config: uvicorn.Config | None = None
    ) -> None:
        """`config`: serve with this uvicorn configuration instead (its app and port; 127.0.0.1)."""
        if config is None:
            self.port = port or free_port()
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level=log_level,
                access_log=False,
                lifespan="on",
                timeout_keep_alive=30,
            )
        else:
            self.port = config.port
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on port {self.port} did not start in {timeout_s}s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
