"""`python -m sandbox`: Advoware, Google Calendar and EspoCRM sandboxes in one process.

Ports: SANDBOX_ADVOWARE_PORT (8101), SANDBOX_GOOGLE_PORT (8102), SANDBOX_ESPOCRM_PORT (8103);
host: SANDBOX_HOST (127.0.0.1; docker-compose sets 0.0.0.0 inside its network).
Before serving, the sandbox service-account key is written to GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH
if that file is missing. `python -m sandbox write-key` only writes the key (used by `make setup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

log = logging.getLogger("sandbox")

SERVICES: tuple[tuple[str, str, int], ...] = (
    # (module, port variable, default port)
    ("sandbox.advoware", "SANDBOX_ADVOWARE_PORT", 8101),
    ("sandbox.google_calendar", "SANDBOX_GOOGLE_PORT", 8102),
    ("sandbox.espocrm", "SANDBOX_ESPOCRM_PORT", 8103),
)


def write_key_if_missing() -> Path | None:
    """Write the sandbox service-account key where the Google settings point, once."""
    from include.settings import GoogleSettings

    path_str = GoogleSettings().calendar_service_account_path
    if not path_str:
        return None
    path = Path(path_str)
    if path.exists():
        return path
    from sandbox.keys import write_service_account_file

    path.parent.mkdir(parents=True, exist_ok=True)
    write_service_account_file(path)
    log.info("wrote sandbox service-account key to %s", path)
    return path


class _Server(uvicorn.Server):
    """One of several servers on one loop: signals are handled once, for all, in `serve_all`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _servers(host: str) -> list[_Server]:
    servers = []
    for module, var, default in SERVICES:
        app = importlib.import_module(module).create_app()
        port = int(os.environ.get(var, default))
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30
        )
        servers.append(_Server(config))
        log.info("%s on http://%s:%d", module, host, port)
    return servers


async def serve_all(servers: list[_Server]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    # If one server dies (port taken, crash), stop the others: a half-up sandbox only confuses.
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        if t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
    if any(not s.started for s in servers):
        raise SystemExit("a sandbox server failed to start (port in use?)")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args == ["write-key"]:
        print(write_key_if_missing() or "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH is empty: nothing written")
        return 0
    if args:
        print("usage: python -m sandbox [write-key]", file=sys.stderr)
        return 2
    write_key_if_missing()
    asyncio.run(serve_all(_servers(os.environ.get("SANDBOX_HOST", "127.0.0.1"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
