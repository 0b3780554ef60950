"""The planning step's threads: a bounded number of employees planned at once, and none of them
allowed to hold up the others.

`plan_in_threads` runs `fn(employee)` on at most `threads` daemon threads. An employee whose planning
runs longer than `timeout_s` is given up (`timed_out`): the caller hands it on unplanned, and its
unit's phase task plans it again with the task's retries and backoff. Its thread cannot be stopped in
the middle of a call; it finishes that call, and from then on may write nothing. When every thread
is held by a given-up employee, the employees not yet started are handed on too (`not_started`), so
a hanging API costs the planning step one timeout, not one per employee. The threads are daemons:
the task process ends with its task, whatever a hung call still waits for.

The steps that must never be cut in half run `uninterrupted()`: provisioning a calendar and saving
the plan. Giving up waits until such a step is over, and a given-up employee cannot begin one, so an
employee is never provisioned or planned twice at once (here and in its unit's task). After its plan
is saved (`final=True`) an employee is no longer given up: its outcome stands.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class Abandoned(RuntimeError):
    """The employee's planning was given up (timeout); nothing more may be written for it."""


class Ticket:
    """One employee's planning on a thread."""

    def __init__(self, employee: str) -> None:
        self.employee = employee
        self.started = time.monotonic()
        self.abandoned = False
        self.final = False  # its plan is saved: no longer given up
        self._lock = threading.RLock()  # steps nest (recovery provisions inside its own step)

    def abandon(self) -> bool:
        """Give the employee up; False while an uninterrupted step runs or once its plan is saved."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self.final:
                return False
            self.abandoned = True
            return True
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def uninterrupted(self, *, final: bool = False) -> Iterator[None]:
        with self._lock:
            if self.abandoned:
                raise Abandoned(f"planning of {self.employee} was given up")
            yield
            if final:
                self.final = True


_current: ContextVar[Ticket | None] = ContextVar("planning_ticket", default=None)


@contextlib.contextmanager
def uninterrupted(*, final: bool = False) -> Iterator[None]:
    """A step of the current employee's planning that is never cut (outside the pool: no effect)."""
    ticket = _current.get()
    if ticket is None:
        yield
        return
    with ticket.uninterrupted(final=final):
        yield


@dataclass
class PoolResult:
    done: dict[str, Any] = field(default_factory=dict)  # employee -> what fn returned (or raised)
    timed_out: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)


def plan_in_threads(
    employees: Iterable[str], fn: Callable[[str], Any], *, threads: int, timeout_s: float
) -> PoolResult:
    """`fn(employee)` for every employee, at most `threads` at once, each given up after `timeout_s`."""
    queue: deque[str] = deque(employees)
    result = PoolResult()
    running: dict[str, Ticket] = {}
    changed = threading.Condition()

    def work() -> None:
        while True:
            with changed:
                if not queue:
                    return
                employee = queue.popleft()
                ticket = running[employee] = Ticket(employee)
            token = _current.set(ticket)
            try:
                outcome: Any = fn(employee)
            except Abandoned:
                outcome = None
            except Exception as exc:  # fn records its own failures; anything else is the employee's too
                outcome = exc
            finally:
                _current.reset(token)
            with changed:
                running.pop(employee, None)
                if not ticket.abandoned:
                    result.done[employee] = outcome
                changed.notify_all()

    workers = [
        threading.Thread(target=work, name=f"plan-{i}", daemon=True) for i in range(max(1, min(threads, len(queue))))
    ]
    for w in workers:
        w.start()
    with changed:
        while True:
            now = time.monotonic()
            for employee, ticket in list(running.items()):
                if not ticket.abandoned and now - ticket.started >= timeout_s and ticket.abandon():
                    result.timed_out.append(employee)
                    log.warning(
                        "planning %s: no answer within %.0f s, handed on to its phase task", employee, timeout_s
                    )
            live = [t for t in running.values() if not t.abandoned]
            if not queue and not live:
                break
            held = sum(1 for t in running.values() if t.abandoned)
            if queue and held >= len(workers):  # every thread waits on a hung call
                result.not_started = list(queue)
                queue.clear()
                log.warning(
                    "planning: every thread is held by a hung call; %d employees handed on unplanned",
                    len(result.not_started),
                )
                if not live:
                    break
            waits = [timeout_s - (now - t.started) for t in live]
            changed.wait(timeout=max(0.05, min(waits, default=timeout_s)))
    return result
