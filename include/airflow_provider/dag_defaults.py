"""The retry policy the DAGs share, as their `default_args`: three retries with exponential backoff.

Imported when a DAG file is parsed (every task process parses it): nothing but the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any


def calendar_retry_delay_s() -> float:
    """The calendar DAGs' first retry delay (tests shorten it before the DAG file is parsed)."""
    return float(os.environ.get("CALENDAR_SYNC_RETRY_DELAY_S", "30"))


def default_args(
    *,
    retry_delay_s: float,
    max_retry_delay: timedelta,
    execution_timeout: timedelta | None = None,
    on_failure_callback: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Each task retried three times, the delay doubling from `retry_delay_s` up to `max_retry_delay`;
    `execution_timeout` and `on_failure_callback` only where given."""
    args: dict[str, Any] = {
        "retries": 3,
        "retry_delay": timedelta(seconds=retry_delay_s),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": max_retry_delay,
    }
    if execution_timeout is not None:
        args["execution_timeout"] = execution_timeout
    if on_failure_callback is not None:
        args["on_failure_callback"] = on_failure_callback
    return args
