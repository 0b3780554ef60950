"""At most one `beteiligte_sync` trigger check in flight per gateway process, however many webhooks arrive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TriggerCoalescer:
    """At most one trigger check in flight per process (no thread hop per webhook). A request while
    one runs makes it run once more afterwards (at most every `min_interval_s`), so every enqueue is
    followed by a check that started after it. Called on the event loop only."""

    def __init__(self, fn: Callable[[], None] | None, min_interval_s: float = 0.5) -> None:
        self._fn = fn
        self._min_interval_s = min_interval_s
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        if self._fn is None:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(self._fn))

    async def _run(self, fn: Callable[[], None]) -> None:
        while True:
            self._again = False
            started = time.monotonic()
            await asyncio.to_thread(fn)  # sync clients; never raises (see WebhookResources.trigger_once)
            if not self._again:
                return
            await asyncio.sleep(max(0.0, self._min_interval_s - (time.monotonic() - started)))

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
