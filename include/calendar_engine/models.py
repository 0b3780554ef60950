"""The canonical appointment both sides are mapped to and from.

Only the fields of `Appointment.content()` are "mapped fields": they decide equality of content and
go into the fingerprint. The source ids (`frnr`, `employee`) and `read_only` are bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from include.calendar_engine.timeutil import normalize

# Advoware stores an open-ended series with datumBis in this year; we write 2037-12-31.
OPEN_ENDED_YEAR = 2037
OPEN_ENDED_DATE = date(OPEN_ENDED_YEAR, 12, 31)
# A recurring Advoware appointment lasts at most 23:59 h per occurrence.
MAX_SERIES_OCCURRENCE = timedelta(hours=23, minutes=59)


class Freq(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    YEARLY = "YEARLY"


# Advoware turnusArt ⇄ frequency.
TURNUS_ART = {1: Freq.DAILY, 2: Freq.WEEKLY, 3: Freq.MONTHLY, 4: Freq.YEARLY}
TURNUS_ART_OF = {v: k for k, v in TURNUS_ART.items()}


@dataclass(frozen=True)
class Recurrence:
    """What Advoware can hold: one frequency, an interval, an end date (None = open-ended)."""

    freq: Freq
    interval: int = 1
    until: date | None = None

    def content(self) -> dict[str, Any]:
        return {
            "freq": str(self.freq),
            "interval": self.interval,
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass(frozen=True)
class Matter:
    """The linked matter (Akte): Advoware `nr` and `azRubrum`."""

    nr: str
    az_rubrum: str = ""


@dataclass(frozen=True)
class Unsupported:
    """A typed "cannot be held by the other side" result (never silently flattened)."""

    reason: str


@dataclass(frozen=True)
class Appointment:
    """Canonical appointment.

    Timed: `start`/`end` are aware datetimes in Europe/Berlin. All-day: `start`/`end` are dates and
    `end` is exclusive (Google's convention; Advoware's 23:59 end is converted at the edge). For a
    series, start/end describe the first occurrence and `recurrence` the rule.
    """

    start: datetime | date
    end: datetime | date
    all_day: bool = False
    title: str = ""
    note: str = ""
    location: str = ""
    private: bool = False
    recurrence: Recurrence | None = None
    matter: Matter | None = None
    reminder_minutes: int | None = None
    # bookkeeping, not content
    frnr: int | None = None
    employee: str | None = None
    read_only: bool = False

    def content(self) -> dict[str, Any]:
        """The mapped fields as canonical JSON-able data (what the fingerprint hashes)."""
        return {
            "all_day": self.all_day,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "title": self.title,
            "note": self.note,
            "location": self.location,
            "private": self.private,
            "recurrence": self.recurrence.content() if self.recurrence else None,
            "matter": {"nr": self.matter.nr, "az_rubrum": self.matter.az_rubrum} if self.matter else None,
            "reminder_minutes": self.reminder_minutes,
        }

    def start_date(self) -> date:
        return self.start if self.all_day else normalize(self.start).date()  # type: ignore[arg-type]

    def span(self) -> tuple[date, date]:
        """First day touched and last day touched (2037-12-31 for an open-ended series)."""
        first = self.start_date()
        if self.all_day:
            last_of_occurrence = self.end - timedelta(days=1)
        else:
            last_of_occurrence = normalize(self.end).date()  # type: ignore[arg-type]
        if self.recurrence is None:
            return first, max(first, last_of_occurrence)
        until = self.recurrence.until or OPEN_ENDED_DATE
        return first, max(until + (last_of_occurrence - first), first)

    def duration(self) -> timedelta:
        return self.end - self.start  # type: ignore[operator]


def _iso(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return normalize(value).isoformat()
    return value.isoformat()


def clean_text(value: Any) -> str:
    """Both systems are loose with whitespace and None; compare the trimmed text with \\n newlines."""
    if value is None:
        return ""
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
