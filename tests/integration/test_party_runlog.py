"""The party run log (`sync_runs`, kind 'beteiligte') that drain writes: a drain that raised is a
failed run naming the exception's class only, and the retry of the same run adds its counts."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import redis

from include.hub.db import Hub
from include.parties.drain import drain
from include.parties.runlog import HubRunLog
from include.parties.sync import PartySync
from include.queue.party_queue import PartyQueue
from include.status.queries import Sources, collect
from sandbox.runner import free_port
from tests.party_helpers import CrmUser, make_queue, make_sync


@pytest.fixture
def syncer(advoware_url: str, espocrm_url: str, redis_url: str, hub: str) -> Iterator[PartySync]:
    s = make_sync(advoware_url, espocrm_url, redis_url, hub)
    yield s
    s.close()


def _row(hub: str) -> dict:
    with psycopg.connect(hub, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute("SELECT * FROM sync_runs WHERE kind = 'beteiligte'").fetchall()
    assert len(rows) == 1, rows
    return rows[0]


def test_failed_try_then_retry_of_the_same_run(syncer: PartySync, espocrm_url: str, redis_url: str, hub: str) -> None:
    run_log = HubRunLog(Hub(hub), "manual__r1")
    unreachable = PartyQueue(redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1))
    with pytest.raises(redis.ConnectionError):
        drain(unreachable, syncer.sync_party, run_log=run_log)
    row = _row(hub)
    assert (row["run_id"], row["status"], row["employee"]) == ("manual__r1", "failed", None)
    assert row["error"] == "drain raised ConnectionError"  # the class only: no host, no data
    assert row["finished_at"] is not None and row["counts"]["tries"] == 1 and row["counts"]["claimed"] == 0

    user = CrmUser(espocrm_url)
    good = user.create(name="Gut")["id"]
    bad = user.create(name="")["id"]  # Advoware needs a name: this one fails
    make_queue(redis_url).enqueue([good, bad], "create")
    report = drain(make_queue(redis_url), syncer.sync_party, batch_size=10, run_log=run_log)
    assert (report.acked, report.retried) == (1, 1)
    row = _row(hub)
    assert (row["status"], row["error"]) == ("success", None)
    counts = row["counts"]
    assert counts["tries"] == 2 and counts["claimed"] == 2 and counts["acked"] == 1 and counts["retried"] == 1
    assert counts["created"] == 1 and counts["advoware_writes"] == report.advoware_writes >= 1
    shown = collect(Sources.from_urls(hub, redis_url))["party_run"]
    assert shown["run_id"] == "manual__r1" and shown["counts"]["retried"] == 1


def test_a_drain_outside_a_run_writes_no_row(syncer: PartySync, redis_url: str, hub: str) -> None:
    from include.parties.runlog import hub_run_log

    assert hub_run_log(Hub(hub), None) is None
    drain(make_queue(redis_url), syncer.sync_party, run_log=hub_run_log(Hub(hub), None))
    with psycopg.connect(hub) as conn:
        assert conn.execute("SELECT count(*) FROM sync_runs").fetchone()[0] == 0
