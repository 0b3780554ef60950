"""Policy and time window of one planning run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any, Literal

ConflictPolicy = Literal["advoware_wins", "google_wins", "last_change_wins"]


@dataclass(frozen=True)
class Policy:
    conflict_policy: ConflictPolicy = "advoware_wins"
    write_protection: bool = False
    include_shared_pool: bool = False
    anonymize: bool = False
    delete_threshold_ratio: float = 0.2
    delete_threshold_min: int = 10
    force_deletions: bool = False
    refill_google: bool = False  # after a safety stop: what was deleted in Google is made again there
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Policy:
        """From `include.settings.Settings` (sync.* and advoware.write_protection) plus run params."""
        sync = settings.sync
        values: dict[str, Any] = {
            "conflict_policy": sync.conflict_policy,
            "write_protection": settings.advoware.write_protection,
            "include_shared_pool": sync.include_shared_pool,
            "anonymize": sync.anonymize,
            "delete_threshold_ratio": sync.delete_threshold_ratio,
            "delete_threshold_min": sync.delete_threshold_min,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Window:
    """Inclusive date range the listings of both sides cover."""

    start: date
    end: date

    @classmethod
    def around(cls, today: date, days_back: int = 30, days_ahead: int = 365) -> Window:
        return cls(today - timedelta(days=days_back), today + timedelta(days=days_ahead))

    def overlaps(self, first: date, last: date) -> bool:
        return first <= self.end and last >= self.start
