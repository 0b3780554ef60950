"""Holding an employee's sync lease (include/hub/leases.py) for the time a task works on them.

One employee is synced by one run at a time: the scheduled run of the firm and a targeted run of the
employee (a Google notification, a write through the proxy) never work on them at once. A task takes
the lease before it reads or writes anything of the employee and gives it back when it is done; a
thread renews it every third of its TTL (SYNC_LEASE_TTL_S) meanwhile, so a long phase keeps it and a
killed worker's lease simply expires. Between two tasks of a run nobody holds it: a targeted run may
sync the employee there, and the run's later phases are safe against that (the executor re-reads
before each write and skips what is already applied, executor.py).

Who waits: the scheduled run's planning skips an employee someone else holds (`wait_s=0`; the
holder syncs them now, the next run sees the rest); its phase tasks and the targeted run wait a while
(`wait_s`), then raise `EmployeeLeased`, which fails the employee's task for Airflow to retry.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from include.hub import leases
from include.hub.db import Hub, HubConnection, connect

log = logging.getLogger(__name__)
POLL_S = 0.25  # how often a waiting task asks again (a targeted run's latency is counted in seconds)
HubLike = Hub | str  # the task's hub (its thread's connection, reused), or a DSN (a connection per call)


def _transaction(hub: HubLike) -> contextlib.AbstractContextManager[HubConnection]:
    return connect(hub) if isinstance(hub, str) else hub.transaction()


class EmployeeLeased(RuntimeError):
    """Another run holds the employee's lease (and kept it past our wait)."""

    def __init__(self, employee: str, holder: str | None) -> None:
        super().__init__(f"{employee} is being synced by {holder or 'another run'}")
        self.employee, self.holder = employee, holder


class HeldLease:
    """A lease we hold; `lost` turns true if a renewal found it taken (it had expired)."""

    def __init__(self, hub: HubLike, employee: str, holder: str, ttl_s: float) -> None:
        self.hub = hub
        self.dsn = hub if isinstance(hub, str) else hub.dsn
        self.employee, self.holder, self.ttl_s = employee, holder, ttl_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{employee}", daemon=True)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:  # a connection of its own: renewals are rare (every third of the TTL), the thread short-lived
                with connect(self.dsn) as conn:
                    if not leases.renew(conn, self.employee, self.holder, self.ttl_s):
                        self.lost = True
                        log.error(
                            "lease of %s lost by %s (it expired and another run took it)", self.employee, self.holder
                        )
                        return
            except Exception as exc:  # hub away for a moment: the next renewal tries again
                log.warning("lease of %s not renewed: %s", self.employee, type(exc).__name__)

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            with _transaction(self.hub) as conn:
                leases.release(conn, self.employee, self.holder)
        except Exception as exc:  # it expires by itself
            log.warning(
                "lease of %s not released (it expires in %.0f s): %s", self.employee, self.ttl_s, type(exc).__name__
            )


def try_acquire(hub: HubLike, employee: str, holder: str, ttl_s: float, wait_s: float = 0.0) -> HeldLease | None:
    """The lease if it is free (or expired, or ours) within `wait_s`; None if someone else kept it."""
    deadline = time.monotonic() + wait_s
    while True:
        with _transaction(hub) as conn:
            if leases.acquire(conn, employee, holder, ttl_s):
                held = HeldLease(hub, employee, holder, ttl_s)
                held._thread.start()
                return held
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def current_holder(hub: HubLike, employee: str) -> str | None:
    with _transaction(hub) as conn:
        found = leases.holder(conn, employee)
    return found[0] if found else None


@contextlib.contextmanager
def employee_lease(hub: HubLike, employee: str, holder: str, ttl_s: float, wait_s: float = 0.0) -> Iterator[HeldLease]:
    """Hold the employee's lease for the block; `EmployeeLeased` if another run keeps it past `wait_s`."""
    held = try_acquire(hub, employee, holder, ttl_s, wait_s)
    if held is None:
        raise EmployeeLeased(employee, current_holder(hub, employee))
    try:
        yield held
    finally:
        held.release()
