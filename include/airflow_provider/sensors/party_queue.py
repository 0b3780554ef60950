"""The wait of `beteiligte_sync` for queued party work: one look on a worker, then the triggerer.

`PartyWorkSensor` looks at the queue once, in its task process: work ready (the usual case of a run
the gateway triggered) → success at once, `drain_queue` follows. Nothing ready → it defers to
`PartyWorkTrigger` (include/airflow_provider/triggers/party_queue.py) and its process ends; the
trigger ends the task from the triggerer itself: success as soon as a party id is ready (or a crashed
worker's claim has expired), skipped after `idle_timeout_s` without work (the run ends quietly,
`drain_queue` is skipped). So a sweep that finds nothing costs one short task process, and waiting
costs none.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from include import conn_ids
from include.airflow_provider.triggers.party_queue import PartyWorkTrigger
from include.queue.party_queue import DEFAULT_PREFIX


class PartyWorkSensor(BaseOperator):
    """Succeeds when party work is queued; waits for it in the triggerer; skipped after the idle timeout."""

    def __init__(
        self,
        *,
        redis_conn_id: str = conn_ids.REDIS,
        prefix: str = DEFAULT_PREFIX,
        idle_timeout_s: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.redis_conn_id, self.prefix, self.idle_timeout_s = redis_conn_id, prefix, idle_timeout_s

    def execute(self, context: Any) -> None:
        from include.airflow_provider.hooks.redis import redis_url
        from include.airflow_provider.notifiers.alerts import check_party_queue
        from include.alerts import Incidents
        from include.queue.party_queue import PartyQueue

        queue = PartyQueue.from_url(redis_url(self.redis_conn_id), prefix=self.prefix)
        try:
            stats = queue.stats()
            check_party_queue(stats, Incidents(queue.r))  # a backlog nobody drains needs a person
            if stats.ready or stats.expired_claims:
                self.log.info("party work is ready: %d ready, %d expired claims", stats.ready, stats.expired_claims)
                return
        finally:
            queue.r.close()
        self.log.info("no party work ready: waiting in the triggerer (at most %.0fs)", self.idle_timeout_s)
        self.defer(
            trigger=PartyWorkTrigger(self.redis_conn_id, self.prefix, self.idle_timeout_s),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: Any = None) -> None:
        """Reached only when a task resumes from the trigger on a worker (`dag.test()`): the triggerer
        itself ends the task with the event's state."""
        self.log.info("resumed on a worker after the wait (%s)", event)
        if str(event) == "skipped":
            raise AirflowSkipException(f"no party work within {self.idle_timeout_s:.0f}s")
