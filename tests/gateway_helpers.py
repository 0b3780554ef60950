"""Helpers of the gateway tests: every log line the gateway (and uvicorn under it) writes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

# uvicorn's own loggers do not propagate to the root logger (its dictConfig), so pytest's caplog
# misses "Exception in ASGI application" (uvicorn.error, which propagates to uvicorn): listen there too.
_LOGGERS = ("", "uvicorn")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        """Each record as the gateway's log format writes it (message plus any traceback)."""
        out = []
        for rec in self.records:
            text = rec.getMessage()
            if rec.exc_info:
                text += "\n" + logging.Formatter().formatException(rec.exc_info)
            out.append(text)
        return out

    def errors(self) -> list[str]:
        """ERROR and worse, and anything that carries a traceback."""
        return [
            line
            for rec, line in zip(self.records, self.lines(), strict=True)
            if rec.levelno >= logging.ERROR or rec.exc_info
        ]


@contextmanager
def gateway_logs(level: int = logging.INFO) -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.level == logging.NOTSET or lg.level > level:
            lg.setLevel(level)
    try:
        yield handler
    finally:
        for lg, lvl in zip(loggers, before, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(lvl)
