"""Google's two per-minute quotas as sliding windows: L requests per W seconds per user ("per minute
per user"), and P requests per W seconds of the whole project, every user together ("per minute per
project"). A request must fit both."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any


class SlidingWindowQuota:
    def __init__(self, limit: int = 600, window_s: float = 60.0, project_limit: int = 10000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.project_limit = project_limit
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._project: deque[float] = deque()
        self.refused = {"user": 0, "project": 0}
        self.project_peak = 0  # the most requests the project's window ever held

    def configure(self, limit: int, window_s: float, project_limit: int | None = None) -> None:
        self.limit = limit
        self.window_s = window_s
        if project_limit is not None:
            self.project_limit = project_limit
        self.reset()

    def admit(self, user: str) -> bool:
        """Record one request of `user` if it fits into both windows; False when over a quota.

        Rejected requests do not occupy the window, so a client that backs off gets through again
        once its earlier requests have aged out.
        """
        now = time.monotonic()
        seen = self._seen[user]
        for window in (seen, self._project):
            while window and window[0] <= now - self.window_s:
                window.popleft()
        if len(seen) >= self.limit:
            self.refused["user"] += 1
            return False
        if self.project_limit and len(self._project) >= self.project_limit:
            self.refused["project"] += 1
            return False
        seen.append(now)
        self._project.append(now)
        self.project_peak = max(self.project_peak, len(self._project))
        return True

    def report(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "project_limit": self.project_limit,
            "window_s": self.window_s,
            "refused": dict(self.refused),
            "project_peak": self.project_peak,
        }

    def reset(self) -> None:
        self._seen.clear()
        self._project.clear()
        self.refused = {"user": 0, "project": 0}
        self.project_peak = 0
