"""The party work queue against the real Redis: coalescing, leases, ack/nack, dead letters, stats."""

from __future__ import annotations

import threading

import pytest
import redis

from include.hub import dead_letters
from include.hub.db import connect
from include.queue.party_queue import PartyQueue, RejectedItem
from tests.redis_helpers import has_work, is_pending

T0 = 1_800_000_000.0


@pytest.fixture
def queue(redis_url: str) -> PartyQueue:
    return PartyQueue(redis.Redis.from_url(redis_url), max_attempts=3, lease_s=60, backoff_base_s=10, backoff_max_s=25)


def test_repeated_changes_coalesce_into_one_unit_of_work(queue: PartyQueue) -> None:
    queue.enqueue(["a"], "create", now=T0)
    queue.enqueue(["a", "b"], "update", now=T0 + 1)
    queue.enqueue(["a"], "delete", now=T0 + 2)
    got = queue.claim(10, now=T0 + 3)
    assert sorted(p.id for p in got) == ["a", "b"]
    a = next(p for p in got if p.id == "a")
    assert a.kinds == {"create", "update", "delete"}
    assert a.delete_seen and a.last_kind == "delete" and a.deliveries == 3 and a.first_seen == T0


def test_body_hash_counts_redeliveries_but_never_suppresses(queue: PartyQueue) -> None:
    body_a, body_b = b'[{"id":"x","name":"A"}]', b'[{"id":"x","name":"B"}]'
    assert not queue.enqueue(["x"], "update", body=body_a, now=T0).duplicate
    [p] = queue.claim(now=T0)
    assert queue.ack(p, now=T0) == "done"
    assert not queue.enqueue(["x"], "update", body=body_b, now=T0 + 1).duplicate
    [p] = queue.claim(now=T0 + 1)
    assert queue.ack(p, now=T0 + 1) == "done"
    # A -> B -> A: the third body equals the first; it is counted as a re-delivery and still queued
    assert queue.enqueue(["x"], "update", body=body_a, now=T0 + 2).duplicate
    assert is_pending(queue, "x")
    assert queue.stats(now=T0 + 2).counters["duplicates"] == 1
    # the same body on another event path is a different delivery
    assert not queue.enqueue(["x"], "create", body=body_a, now=T0 + 3).duplicate


def test_concurrent_claims_never_hand_out_an_id_twice(queue: PartyQueue) -> None:
    ids = [f"id{i:04d}" for i in range(400)]
    for i in range(0, 400, 50):
        queue.enqueue(ids[i : i + 50], "update", now=T0)
    seen: list[list[str]] = [[] for _ in range(4)]

    def worker(n: int) -> None:
        q = PartyQueue(redis.Redis(connection_pool=queue.r.connection_pool))
        while batch := q.claim(7, now=T0 + 1):
            seen[n].extend(p.id for p in batch)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    flat = [i for s in seen for i in s]
    assert sorted(flat) == ids  # every id exactly once
    assert queue.stats(now=T0 + 1).claimed == 400


def test_a_crashed_workers_claim_returns_after_the_lease(queue: PartyQueue) -> None:
    queue.enqueue(["p"], "create", now=T0)
    [first] = queue.claim(lease_s=30, now=T0)
    assert queue.claim(now=T0 + 29) == []  # still leased
    assert not has_work(queue, now=T0 + 29)
    assert has_work(queue, now=T0 + 31)
    [again] = queue.claim(now=T0 + 31)
    assert again.id == "p" and again.attempts == 1  # the lost claim counts as an attempt
    assert queue.ack(first, now=T0 + 32) == "stale"  # the crashed worker's late ack changes nothing
    assert queue.nack(first, "late", now=T0 + 32).outcome == "stale"
    assert queue.ack(again, now=T0 + 33) == "done"
    assert queue.item("p") == {}


def test_change_during_claim_is_processed_again(queue: PartyQueue) -> None:
    queue.enqueue(["p"], "create", now=T0)
    [claimed] = queue.claim(now=T0)
    queue.enqueue(["p"], "delete", now=T0 + 1)  # arrives while the worker syncs
    assert not is_pending(queue, "p")  # no second worker may take it meanwhile
    assert queue.claim(now=T0 + 2) == []
    assert queue.ack(claimed, now=T0 + 3) == "requeued"
    [again] = queue.claim(now=T0 + 3)
    assert again.delete_seen
    assert queue.ack(again, now=T0 + 4) == "done"
    assert not has_work(queue, now=T0 + 100)


def test_nack_backs_off_then_dead_letters(queue: PartyQueue) -> None:
    queue.enqueue(["bad"], "update", now=T0)
    [p] = queue.claim(now=T0)
    r1 = queue.nack(p, "HTTP 500 from Advoware", now=T0)
    assert (r1.outcome, r1.attempts, r1.not_before) == ("retry", 1, T0 + 10)
    assert queue.claim(now=T0 + 9.9) == []  # not before its time
    [p] = queue.claim(now=T0 + 10)
    r2 = queue.nack(p, "HTTP 500 from Advoware", now=T0 + 10)
    assert (r2.outcome, r2.not_before) == ("retry", T0 + 10 + 20)
    assert queue.claim(now=T0 + 29) == []
    [p] = queue.claim(now=T0 + 30)
    assert p.attempts == 2 and p.last_error == "HTTP 500 from Advoware"
    r3 = queue.nack(p, "HTTP 500 from Advoware", now=T0 + 30)
    assert r3.outcome == "dead" and r3.attempts == 3
    assert not has_work(queue, now=T0 + 10_000)
    parked: list[dict] = []
    assert queue.drain_dead_letter_outbox(parked.append) == 1
    assert parked[0]["entity_id"] == "bad" and parked[0]["attempts"] == 3
    assert parked[0]["source"] == "beteiligte_sync" and "500" in parked[0]["reason"]
    assert queue.stats().outbox == 0 and queue.stats().counters["dead"] == 1


def test_backoff_is_capped(queue: PartyQueue) -> None:
    q = PartyQueue(queue.r, max_attempts=10, backoff_base_s=10, backoff_max_s=25)
    q.enqueue(["c"], "update", now=T0)
    t = T0
    delays = []
    for _ in range(3):
        [p] = q.claim(now=t)
        r = q.nack(p, "x", now=t)
        delays.append(r.not_before - t)
        t = r.not_before
    assert delays == [10, 20, 25]


def test_a_new_change_during_the_last_attempt_is_not_dead_lettered(queue: PartyQueue) -> None:
    queue.enqueue(["q"], "update", now=T0)
    for i in range(2):
        [p] = queue.claim(now=T0 + 100 * i)
        queue.nack(p, "boom", now=T0 + 100 * i)
    [p] = queue.claim(now=T0 + 200)
    queue.enqueue(["q"], "update", now=T0 + 201)
    assert queue.nack(p, "boom", now=T0 + 202).outcome == "retry"


def test_repeatedly_lost_leases_end_in_the_dead_letters(queue: PartyQueue) -> None:
    queue.enqueue(["crashy"], "update", now=T0)
    t = T0
    for _ in range(3):
        queue.claim(lease_s=5, now=t)
        t += 6
    assert queue.claim(now=t) == []
    parked: list[dict] = []
    queue.drain_dead_letter_outbox(parked.append)
    assert [p["entity_id"] for p in parked] == ["crashy"] and "lease expired" in parked[0]["reason"]


def test_rejected_items_are_parked_with_the_enqueue(queue: PartyQueue, hub: str) -> None:
    queue.enqueue(["ok1"], "create", rejected=[RejectedItem(1, "missing id", {"name": "x"})], now=T0)
    assert queue.stats().outbox == 1

    def sink(entry: dict) -> None:
        with connect(hub) as conn:
            dead_letters.add_from_outbox(conn, entry)

    assert queue.drain_dead_letter_outbox(sink) == 1
    with connect(hub) as conn:
        [row] = dead_letters.list_(conn)
        assert row["source"] == "webhook" and row["entity_id"] is None and row["reason"] == "missing id"
        assert row["payload"] == {"event": "create", "index": 1, "item": {"name": "x"}}
        assert dead_letters.mark_replayed(conn, row["id"]) and not dead_letters.mark_replayed(conn, row["id"])
        assert dead_letters.list_(conn) == [] and len(dead_letters.list_(conn, include_replayed=True)) == 1


def test_a_failing_sink_keeps_the_entry(queue: PartyQueue) -> None:
    queue.enqueue([], "create", rejected=[RejectedItem(0, "missing id")], now=T0)

    def broken(entry: dict) -> None:
        raise ConnectionError("hub down")

    with pytest.raises(ConnectionError):
        queue.drain_dead_letter_outbox(broken)
    assert queue.stats().outbox == 1
    got: list[dict] = []
    assert queue.drain_dead_letter_outbox(got.append) == 1 and got[0]["reason"] == "missing id"


def test_stats_report_depth_and_age(queue: PartyQueue) -> None:
    queue.enqueue(["a", "b", "c"], "update", now=T0)
    queue.enqueue(["d"], "update", now=T0 + 50)
    queue.claim(1, lease_s=100, now=T0 + 60)
    s = queue.stats(now=T0 + 70)
    assert (s.pending, s.ready, s.claimed, s.expired_claims) == (3, 3, 1, 0)
    assert s.oldest_ready_age_s == 70
    assert s.counters["accepted"] == 4 and s.counters["deliveries"] == 2
    assert queue.stats(now=T0 + 200).expired_claims == 1


def test_extend_lease_keeps_the_claim(queue: PartyQueue) -> None:
    queue.enqueue(["slow"], "update", now=T0)
    [p] = queue.claim(lease_s=10, now=T0)
    assert queue.extend_lease(p, 100, now=T0 + 9)
    assert queue.claim(now=T0 + 50) == []
    assert queue.ack(p, now=T0 + 60) == "done"
    assert not queue.extend_lease(p, now=T0 + 61)
