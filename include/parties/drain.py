"""Drain the party work queue: claim a batch with a lease → sync each id → ack / nack → claim again
until nothing is ready. The `beteiligte_sync` DAG's task runs `drain`; so do the demo and the tests.

A worker that dies mid-batch leaves its claims behind; their lease runs out and the next claim (by
any worker) takes them back (include.queue.party_queue). A failing id is nacked: it comes back after
an exponential backoff, and after SYNC_PARTY_MAX_ATTEMPTS it goes to the dead letters (hub table
`dead_letters`, moved there from the Redis outbox at the end of every drain).

`kanzlei-sync drain` runs `work` (a worker on the .env settings, outside Airflow).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from include.hub import dead_letters
from include.hub.db import Hub
from include.parties.runlog import hub_run_log
from include.parties.sync import Outcome, PartySync
from include.queue.party_queue import ClaimedParty, PartyQueue
from include.settings import Settings, SyncSettings

log = logging.getLogger("include.parties.drain")


_COUNTS = (
    "batches",
    "claimed",
    "acked",
    "requeued",
    "retried",
    "dead",
    "stale",
    "dead_letters_moved",
    "advoware_writes",
)


@dataclass
class DrainReport:
    batches: int = 0
    claimed: int = 0
    acked: int = 0  # done, nothing new arrived meanwhile
    requeued: int = 0  # synced, but a newer delivery arrived during the claim: goes round again
    retried: int = 0  # failed, back off
    dead: int = 0  # failed too often: dead letter
    stale: int = 0  # our lease had run out and someone else owns the id now
    dead_letters_moved: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    advoware_writes: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = "empty"  # empty | time budget

    def counts(self) -> dict[str, int]:
        """The numbers of the run log, actions as their own keys (created, updated, unlinked, ...)."""
        counts = {k: int(getattr(self, k)) for k in _COUNTS}
        counts.update({str(action): int(n) for action, n in self.actions.items() if action not in counts})
        return counts

    def as_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: it would rebuild the Counter from (action, n) pairs and copy every note
        every = {f.name: getattr(self, f.name) for f in fields(self)}
        return every | {"actions": dict(self.actions), "notes": self.notes[:50], "seconds": round(self.seconds, 3)}


class RunLog(Protocol):
    """Where a drain records itself (include.parties.runlog.HubRunLog: the hub's `sync_runs`)."""

    def started(self) -> None: ...

    def finished(self, counts: Mapping[str, int], exc: BaseException | None) -> None: ...


def error_text(exc: BaseException) -> str:
    """What a nack and a dead letter keep: the error type and its message (method, endpoint, status
    in our clients' errors; never a body)."""
    return f"{type(exc).__name__}: {exc}"[:500]


def drain(
    queue: PartyQueue,
    sync: Callable[[str], Outcome],
    *,
    batch_size: int = 50,
    lease_s: float | None = None,
    max_seconds: float = 600.0,
    dead_letter_sink: Callable[[Mapping[str, Any]], None] | None = None,
    on_claim: Callable[[list[ClaimedParty]], None] | None = None,
    run_log: RunLog | None = None,
) -> DrainReport:
    """Claim, sync, ack/nack until no id is ready (or `max_seconds` passed: the next run goes on).
    `run_log` hears of the start and of the end with the report (and the exception, if one ends it)."""
    report = DrainReport()
    started = time.monotonic()
    lease = float(lease_s or queue.lease_s)
    if run_log is not None:
        run_log.started()
    raised: BaseException | None = None
    try:
        while True:
            if time.monotonic() - started > max_seconds:
                report.stopped = "time budget"
                break
            batch = queue.claim(batch_size, lease_s=lease)
            if not batch:
                break
            report.batches += 1
            report.claimed += len(batch)
            if on_claim is not None:
                on_claim(batch)
            renewed = time.monotonic()
            for i, party in enumerate(batch):
                if time.monotonic() - renewed > lease / 2:  # a slow batch keeps its claims
                    for rest in batch[i:]:
                        queue.extend_lease(rest, lease)
                    renewed = time.monotonic()
                _one(queue, sync, party, report)
    except BaseException as exc:
        raised = exc
        raise
    finally:
        try:
            if dead_letter_sink is not None:
                report.dead_letters_moved = queue.drain_dead_letter_outbox(dead_letter_sink)
        except BaseException as exc:
            raised = raised or exc
            raise
        finally:
            report.seconds = time.monotonic() - started
            if run_log is not None:
                run_log.finished(report.counts(), raised)
    log.info(
        "drain: %d batches, %d claimed, %d acked, %d requeued, %d retried, %d dead, %d stale in %.1fs",
        report.batches,
        report.claimed,
        report.acked,
        report.requeued,
        report.retried,
        report.dead,
        report.stale,
        report.seconds,
    )
    return report


def _one(queue: PartyQueue, sync: Callable[[str], Outcome], party: ClaimedParty, report: DrainReport) -> None:
    try:
        outcome = sync(party.id)
    except Exception as exc:  # every failure of one party is that party's: the others go on
        result = queue.nack(party, error_text(exc))
        if result.outcome == "dead":
            report.dead += 1
            log.warning("party %s dead-lettered after %d attempts: %s", party.id, result.attempts, type(exc).__name__)
        elif result.outcome == "retry":
            report.retried += 1
            log.warning("party %s failed (attempt %d, %s): retry later", party.id, result.attempts, type(exc).__name__)
        else:
            report.stale += 1
        return
    report.actions[outcome.action] += 1
    report.advoware_writes += outcome.advoware_writes
    report.notes.extend(f"{outcome.espo_id}: {n}" for n in outcome.notes)
    acked = queue.ack(party)
    if acked == "done":
        report.acked += 1
    elif acked == "requeued":
        report.requeued += 1
    else:
        report.stale += 1


def hub_dead_letter_sink(hub: Hub) -> Callable[[Mapping[str, Any]], None]:
    from include.hub import dead_letters

    def sink(entry: Mapping[str, Any]) -> None:
        with hub.transaction() as conn:
            dead_letters.add_from_outbox(conn, dict(entry))

    return sink


def requeue_write_protected(queue: PartyQueue, ids: list[str]) -> int:
    """Once write protection is off, the parties it held back go round again (kind 'replay')."""
    if ids:
        queue.enqueue(ids, "replay")
    return len(ids)


def drain_run(
    queue: PartyQueue,
    syncer: PartySync,
    hub: Hub,
    run_id: str | None,
    settings: SyncSettings,
    *,
    open_dead_letters: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """One `beteiligte_sync` drain: the parties write protection held back go round again once it is
    off, the queue is drained into Advoware (at most 15 minutes: the next run goes on), its run row is
    written, and `open_dead_letters` hears how many party dead letters are open afterwards."""
    requeued = 0 if syncer.write_protected else requeue_write_protected(queue, syncer.store.write_protected_ids())
    report = drain(
        queue,
        syncer.sync_party,
        batch_size=settings.party_batch_size,
        lease_s=settings.party_lease_s,
        max_seconds=15 * 60,
        dead_letter_sink=hub_dead_letter_sink(hub),
        run_log=hub_run_log(hub, run_id),
    )
    if open_dead_letters is not None:
        try:
            with hub.transaction() as conn:
                count = dead_letters.count_open(conn, exclude_source=dead_letters.CALENDAR_SOURCE)
            open_dead_letters(count)
        except Exception as exc:  # the drain's own outcome stands
            log.warning("party dead letters not counted: %s", type(exc).__name__)
    return {**report.as_dict(), "requeued_after_write_protection": requeued}


def work(
    settings: Settings,
    *,
    batch_size: int,
    lease_s: float,
    max_seconds: float,
    backoff_base_s: float,
    once: bool,
    poll_s: float,
) -> int:
    """`kanzlei-sync drain`: drain on the .env settings outside Airflow, printing one JSON line per
    claimed batch ({"claimed": [ids]}); with `once` one drain and its report line, else poll until
    killed (the soak test kills such workers mid-batch)."""

    queue = PartyQueue.from_settings(settings, backoff_base_s=backoff_base_s)
    syncer = PartySync.from_settings(settings)
    sink = hub_dead_letter_sink(syncer.store.hub)

    def announce(batch: list[ClaimedParty]) -> None:
        print(json.dumps({"claimed": [p.id for p in batch]}), flush=True)

    try:
        while True:
            report = drain(
                queue,
                syncer.sync_party,
                batch_size=batch_size,
                lease_s=lease_s,
                max_seconds=max_seconds,
                dead_letter_sink=sink,
                on_claim=announce,
            )
            if once:
                print(json.dumps({"report": report.as_dict()}), flush=True)
                return 0
            if not report.claimed:
                time.sleep(poll_s)
    finally:
        syncer.close()
        queue.r.close()
