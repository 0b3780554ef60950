"""Helpers of the benches (not a bench itself): start a server process and wait until it is healthy;
the Google quota floor."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

# A sandbox in a child process, so its event loop does not share the measured code's GIL.
_SANDBOX = """
import sys, uvicorn, importlib
module, port = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3:
    from sandbox.keys import register_key_file
    register_key_file(sys.argv[3])
app = importlib.import_module(module).create_app()
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, timeout_keep_alive=60)
"""


def wait_healthy(url: str, proc: subprocess.Popen[Any], timeout_s: float = 60.0) -> None:
    """Until `url`/healthz answers 200; the process exiting or the timeout stops it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"{url}: process exited with {proc.returncode} {err}".rstrip())
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise TimeoutError(f"{url} did not become healthy")


def start_sandbox(module: str, port: int, key_file: str | Path | None = None) -> subprocess.Popen[bytes]:
    """`module`'s create_app() on 127.0.0.1:`port` (`key_file`: the service-account key it accepts)."""
    extra = [str(key_file)] if key_file is not None else []
    proc = subprocess.Popen([sys.executable, "-c", _SANDBOX, module, str(port), *extra], cwd=ROOT)
    wait_healthy(f"http://127.0.0.1:{port}", proc)
    return proc


def floor_s(requests_by_user: dict[str, int], quota: int, window_s: float) -> float:
    """The quota's lower bound on wall time: the busiest user's requests, `quota` per `window_s`."""
    return max(((math.ceil(r / quota) - 1) * window_s for r in requests_by_user.values() if r), default=0.0)
