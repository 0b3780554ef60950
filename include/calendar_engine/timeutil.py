"""Time helpers: everything canonical lives in Europe/Berlin as aware datetimes (zoneinfo)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
TZ_NAME = "Europe/Berlin"


def normalize(dt: datetime) -> datetime:
    """An aware datetime as a real Berlin wall time.

    Going through UTC turns a wall time inside the spring-forward gap (02:30 on the DST day) into the
    instant zoneinfo means by it, so equal instants always print the same.
    """
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=BERLIN)
    return dt.astimezone(UTC).astimezone(BERLIN)


def local(day: date, at: time) -> datetime:
    """The Berlin instant of a local (Advoware) date and wall time."""
    return normalize(datetime.combine(day, at.replace(tzinfo=None)).replace(tzinfo=BERLIN))


def parse_local_stamp(value: str | None) -> datetime | None:
    """Advoware's timestamps (`zuletztGeaendertAm`, `erinnerungsDatum`) are naive Berlin wall times."""
    if not value:
        return None
    try:
        return normalize(datetime.fromisoformat(str(value).strip()))
    except ValueError:
        return None


def parse_rfc3339(value: str | None) -> datetime | None:
    """Google's RFC 3339 (`updated`, `dateTime`); a value without offset is taken as Berlin time."""
    if not value:
        return None
    try:
        return normalize(datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def split_advoware(value: str | None) -> tuple[date | None, time | None]:
    """`2025-03-10T09:30:00` → (date, time); `2025-03-10` → (date, None); garbage → (None, None)."""
    if not value:
        return None, None
    text = str(value).strip()
    try:
        if "T" in text or " " in text:
            dt = datetime.fromisoformat(text.replace(" ", "T"))
            return dt.date(), dt.time().replace(tzinfo=None, microsecond=0)
        return date.fromisoformat(text[:10]), None
    except ValueError:
        return None, None


def parse_time(value: str | None) -> time | None:
    if not value:
        return None
    try:
        return time.fromisoformat(str(value).strip()).replace(tzinfo=None, microsecond=0)
    except ValueError:
        return None


def fmt_local(dt: datetime) -> str:
    """Advoware's local format `YYYY-MM-DDTHH:MM:SS`, no offset."""
    return normalize(dt).strftime("%Y-%m-%dT%H:%M:%S")
