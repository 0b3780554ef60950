"""Per-user sliding-window quota, as Google's "requests per minute per user": L requests per W seconds."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class SlidingWindowQuota:
    def __init__(self, limit: int = 600, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._seen: dict[str, deque[float]] = defaultdict(deque)

    def configure(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._seen.clear()

    def admit(self, user: str) -> bool:
        """Record one request of `user` if it fits into the window; False when over quota.

        Rejected requests do not occupy the window, so a client that backs off gets through again
        once its earlier requests have aged out.
        """
        now = time.monotonic()
        seen = self._seen[user]
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        return True

    def reset(self) -> None:
        self._seen.clear()
