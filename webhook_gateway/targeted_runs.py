"""Employees marked as changed become targeted runs of `advoware_calendar_sync_employee`, one per burst.

Who marks: a Google notification (`exists`, google_push.py) and a write to appointments through the
Advoware proxy (proxy.py). A mark is a member of a Redis sorted set (`push:pending`, the employee,
scored with the time its run is due: the first mark + PUSH_DEBOUNCE_S). A mark for an employee
already pending joins it (ZADD NX: counted as coalesced), so a burst (Google batches and repeats
notifications, and sends one for each of the sync's own writes) becomes one run, and the first mark
waits at most the debounce. Marks are in Redis, not in the process: a restarted gateway takes up
what was pending (`resume` at start-up), and several gateway processes share them (each run is
claimed by the one ZREM that removes it).

The loop here claims due marks and triggers a run for each, named by the employee
(`push__<Kürzel>__<time>_<hex>`). Airflow down: the mark is put back and tried again with a growing
wait and the same run id (a POST that timed out may have landed: its retry finds that run),
MAX_ATTEMPTS times; then it is dropped with a warning (the scheduled run finds the change).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

import httpx
import redis.asyncio as aioredis
from prometheus_client import Counter

from include.airflow_api import AirflowApiError
from include.airflow_api_async import AsyncAirflowApi
from include.dag_ids import CALENDAR_EMPLOYEE_SYNC_DAG
from include.settings import Settings

log = logging.getLogger("webhook_gateway.targeted_runs")

PENDING_KEY = "push:pending"  # zset employee -> due (epoch seconds)
SOURCE_KEY = "push:source"  # hash employee -> what marked it first ("push", "proxy")
MAX_ATTEMPTS = 5
IDLE_WAIT_S = 5.0  # the loop's longest sleep without a wake-up (marks of another gateway process)
TRIGGER_DEADLINE_S = 10.0
_SAFE_RUN_PART = re.compile(r"[^A-Za-z0-9_-]")

COALESCED = Counter(
    "vmh_targeted_runs_coalesced_total",
    "Changes that joined an employee's pending targeted run (no run of their own)",
    ["source"],
)
MARKED = Counter("vmh_targeted_runs_marked_total", "Employees marked changed (a targeted run is due)", ["source"])
STARTED = Counter("vmh_targeted_runs_started_total", "Targeted runs started in Airflow", ["source"])
TRIGGER_FAILED = Counter(
    "vmh_targeted_runs_trigger_failures_total",
    "Targeted run triggers that failed (retried, then left to the schedule)",
    ["outcome"],
)


def run_id_for(source: str, employee: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{source}__{_SAFE_RUN_PART.sub('_', employee)[:20]}__{stamp}_{uuid.uuid4().hex[:6]}"


class TargetedRuns:
    """One per gateway process (webhook_gateway/deps.py)."""

    def __init__(
        self, settings: Settings, *, redis_client: aioredis.Redis | None = None, airflow: AsyncAirflowApi | None = None
    ) -> None:
        self.settings = settings
        self.debounce_s = settings.push.debounce_s
        self.redis = redis_client or aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        if airflow is None and settings.airflow_api.url:
            airflow = AsyncAirflowApi.from_settings(settings, deadline_s=TRIGGER_DEADLINE_S)
        self.airflow = airflow
        self._attempts: dict[str, int] = {}
        # the run id of a trigger being retried: a POST that timed out may have landed, and the same id
        # makes its retry find that run (Airflow answers 409) instead of starting a second one
        self._run_ids: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def enabled(self) -> bool:
        return self.settings.push.runs_enabled and self.airflow is not None

    async def mark(self, employee: str, source: str) -> bool:
        """Mark the employee changed: True if this starts a new pending run, False if it joined one.
        Raises redis.RedisError when the mark could not be stored (the caller answers 503)."""
        employee = employee.upper()  # one pending run per employee however it was spelt
        due = time.time() + self.debounce_s
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(PENDING_KEY, {employee: due}, nx=True)
            pipe.hsetnx(SOURCE_KEY, employee, source)
            added, _ = await pipe.execute()
        if added:
            MARKED.labels(source).inc()
        else:
            COALESCED.labels(source).inc()
        self.ensure_loop()
        self._wake.set()
        return bool(added)

    def ensure_loop(self) -> None:
        if self._closing or not self.enabled:
            return
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def pending(self) -> int:
        return int(await self.redis.zcard(PENDING_KEY))

    async def _loop(self) -> None:
        while not self._closing:
            self._wake.clear()
            try:
                wait = await self._start_due()
            except Exception as exc:  # Redis away: try again shortly (the marks stay in Redis)
                log.warning("targeted runs: pending marks not read: %s", type(exc).__name__)
                wait = 1.0
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def _start_due(self) -> float:
        """Trigger every due mark; returns how long to sleep until the next one is due."""
        now = time.time()
        due = await self.redis.zrangebyscore(PENDING_KEY, "-inf", now)
        for raw in due:
            employee = raw.decode() if isinstance(raw, bytes) else str(raw)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hget(SOURCE_KEY, employee)
                pipe.zrem(PENDING_KEY, employee)
                pipe.hdel(SOURCE_KEY, employee)
                source_raw, claimed, _ = await pipe.execute()
            if not claimed:  # another gateway process took it
                continue
            source = source_raw.decode() if isinstance(source_raw, bytes) else (source_raw or "push")
            await self._trigger(employee, source)
        nxt = await self.redis.zrange(PENDING_KEY, 0, 0, withscores=True)
        if not nxt:
            return IDLE_WAIT_S
        return max(0.05, min(IDLE_WAIT_S, float(nxt[0][1]) - time.time()))

    async def _trigger(self, employee: str, source: str) -> None:
        assert self.airflow is not None
        run_id = self._run_ids.setdefault(employee, run_id_for(source, employee))
        try:
            await self.airflow.trigger(
                CALENDAR_EMPLOYEE_SYNC_DAG, {"employee": employee}, run_id, f"{source}: a change of {employee}"
            )
        except (httpx.HTTPError, AirflowApiError, TimeoutError) as exc:
            attempts = self._attempts[employee] = self._attempts.get(employee, 0) + 1
            if attempts >= MAX_ATTEMPTS:
                self._attempts.pop(employee, None)
                self._run_ids.pop(employee, None)
                TRIGGER_FAILED.labels("dropped").inc()
                log.warning(
                    "targeted run for %s not started after %d attempts (%s); the schedule syncs it",
                    employee,
                    attempts,
                    type(exc).__name__,
                )
                return
            TRIGGER_FAILED.labels("retried").inc()
            retry_in = min(60.0, 2.0**attempts)
            log.warning(
                "targeted run for %s not started (%s %s); again in %.0f s",
                employee,
                type(exc).__name__,
                getattr(exc, "status", "") or "",
                retry_in,
            )
            await self.redis.zadd(PENDING_KEY, {employee: time.time() + retry_in}, nx=True)
            await self.redis.hsetnx(SOURCE_KEY, employee, source)
            return
        self._attempts.pop(employee, None)
        self._run_ids.pop(employee, None)
        STARTED.labels(source).inc()
        log.info("targeted run %s started for %s", run_id, employee)

    async def resume(self) -> None:
        """At start-up: marks a stopped gateway left pending become runs now (nothing if Redis is away)."""
        if not self.enabled:
            return
        try:
            if await asyncio.wait_for(self.pending(), timeout=2):
                log.info("targeted runs: taking up the marks left pending")
                self.ensure_loop()
        except Exception as exc:
            log.warning("targeted runs: pending marks not checked at start-up: %s", type(exc).__name__)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await self.redis.aclose()
        if self.airflow is not None:
            await self.airflow.aclose()


def employees_of_termin(*records: Any) -> set[str]:
    """The employees named by Termine records (request body, Advoware's answer): `kuerzel`, else
    `anwalt`; the shared pool (empty, ALLE, Allgemein) is nobody's calendar."""
    found: set[str] = set()
    for record in records:
        if not isinstance(record, dict):
            continue
        code = str(record.get("kuerzel") or record.get("anwalt") or "").strip()
        if code and code.upper() not in ("ALLE", "ALLGEMEIN") and len(code) <= 20:
            found.add(code)
    return found


__all__ = ["TargetedRuns", "employees_of_termin", "run_id_for", "PENDING_KEY"]
