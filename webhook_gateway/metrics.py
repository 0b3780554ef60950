"""The webhook counters and histogram (Prometheus); `/metrics` exposes them with every other metric."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ACCEPTED = Counter("vmh_webhook_accepted_total", "Webhook items stored in the queue", ["event"])
DUPLICATES = Counter(
    "vmh_webhook_duplicates_total", "Items of exact re-deliveries (counted, still enqueued)", ["event"]
)
REJECTED = Counter("vmh_webhook_rejected_total", "Webhook items without a valid id (dead-lettered)", ["event"])
ERRORS = Counter("vmh_webhook_errors_total", "Webhook requests refused", ["event", "status"])
LATENCY = Histogram(
    "vmh_webhook_request_seconds",
    "Webhook handling time until the answer",
    ["event"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
TRIGGERS = Counter("vmh_webhook_dag_triggers_total", "Coalesced beteiligte_sync trigger attempts", ["outcome"])


class EventMetrics:
    """The label children of one event, bound once (labels() takes a lock and a dict lookup per call)."""

    def __init__(self, event: str) -> None:
        self.accepted = ACCEPTED.labels(event)
        self.duplicates = DUPLICATES.labels(event)
        self.rejected = REJECTED.labels(event)
        self.latency = LATENCY.labels(event)
