"""Echo test: one change in EspoCRM leads to a bounded number of sync cycles, not a loop.

EspoCRM's own webhook sender (the sandbox) posts signed batches to the real gateway; the gateway
queues the ids in Redis; the drain syncs them (and writes betNr/status/time back to EspoCRM, which
sends a webhook of its own when the webhook was registered without skipOwn). A cycle = one sender
pass + one drain. The test repeats at most 5 cycles and expects quiet after at most 2, with exactly
one Advoware write for the one change.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from include.espocrm.client import EspoCrmClient
from include.parties.drain import drain
from include.parties.sync import PartySync
from include.queue.party_queue import PartyQueue
from include.settings import AirflowApiSettings, EspoCrmSettings, GatewaySettings
from sandbox.runner import ServerThread, free_port
from tests.party_helpers import (
    ENTITY,
    ESPO_KEY,
    CrmUser,
    advoware_parties,
    make_queue,
    make_sync,
    settings,
    total_party_writes,
)
from webhook_gateway.app import create_app


@pytest.fixture
def gateway(advoware_url: str, espocrm_url: str, redis_url: str, hub: str, request) -> Iterator[str]:  # noqa: ANN001
    """Register the webhooks for a port chosen first, then start the gateway there with their secrets."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secrets = register(espocrm_url, url, skip_own=request.param)
    s = settings(advoware_url, espocrm_url, redis_url, hub)
    s.espocrm = EspoCrmSettings(base_url=espocrm_url, api_key=ESPO_KEY, entity=ENTITY, webhook_secret=secrets)
    # Airflow is not running: the gateway's trigger fails quietly, the test drains itself
    s.airflow_api = AirflowApiSettings(url=f"http://127.0.0.1:{free_port()}", password="x", timeout_s=0.5)
    s.gateway = GatewaySettings(api_token="echo-test-token")
    with ServerThread(create_app(s), port=port):
        yield url


def register(espocrm_url: str, gateway: str, skip_own: bool) -> str:
    """The three webhooks (as `kanzlei-sync register-webhooks` does); answers ESPOCRM_WEBHOOK_SECRET."""
    with EspoCrmClient(espocrm_url, ESPO_KEY) as espo:
        hooks = [
            espo.register_webhook(f"{ENTITY}.{event}", f"{gateway}/webhooks/vmh/beteiligte/{event}", skip_own=skip_own)
            for event in ("create", "update", "delete")
        ]
    return ",".join(f"{h['id']}={h['secretKey']}" for h in hooks)


def cycle(user: CrmUser, syncer: PartySync, queue: PartyQueue) -> int:
    """One sender pass, then one drain; answers how many webhook items were delivered."""
    flushed = user.flush()
    assert all(b["result"] == "delivered" for b in flushed["batches"]), flushed
    drain(queue, syncer.sync_party, batch_size=10)
    return sum(b["items"] for b in flushed["batches"])


def run_until_quiet(user: CrmUser, syncer: PartySync, queue: PartyQueue, max_cycles: int = 5) -> list[int]:
    """Cycles until one delivers nothing; answers the items delivered per busy cycle."""
    busy: list[int] = []
    for _ in range(max_cycles):
        delivered = cycle(user, syncer, queue)
        if delivered == 0:
            return busy
        busy.append(delivered)
    raise AssertionError(f"no quiet after {max_cycles} cycles: deliveries per cycle {busy}")


@pytest.mark.parametrize("gateway", [False, True], ids=["without-skipOwn", "with-skipOwn"], indirect=True)
def test_one_change_quiesces_with_one_advoware_write(
    gateway: str, advoware_url: str, espocrm_url: str, redis_url: str, hub: str, request
) -> None:  # noqa: ANN001
    skip_own = request.node.callspec.params["gateway"]
    user = CrmUser(espocrm_url)
    queue = make_queue(redis_url)
    syncer = make_sync(advoware_url, espocrm_url, redis_url, hub)
    # every write-back carries a new time (EspoCRM stamps have seconds: two syncs within one second
    # would write the same value, which is no change and so sends no webhook)
    ticks = itertools.count()
    syncer.clock = lambda: (datetime(2026, 1, 1) + timedelta(seconds=next(ticks))).strftime("%Y-%m-%d %H:%M:%S")
    try:
        rec = user.create(name="Schmidt", vorname="Anna", ort="Berlin")
        run_until_quiet(user, syncer, queue)  # the party exists in Advoware and is linked
        (bet_nr,) = advoware_parties(advoware_url)
        writes_before = total_party_writes(advoware_url)

        user.update(rec["id"], ort="Hamburg")  # THE one change
        busy = run_until_quiet(user, syncer, queue)

        assert 1 <= len(busy) <= 2, busy
        # without skipOwn the write-back's own webhook arrives once and is recognised; with it, never
        assert len(busy) == (1 if skip_own else 2), busy
        assert total_party_writes(advoware_url) - writes_before == 1
        assert advoware_parties(advoware_url)[bet_nr]["ort"] == "Hamburg"
        assert user.record(rec["id"])["advowareSyncStatus"] == "synced"
        stats = queue.stats()
        assert (stats.pending, stats.claimed) == (0, 0)
    finally:
        syncer.close()


@pytest.mark.parametrize("gateway", [False], ids=["without-skipOwn"], indirect=True)
def test_party_demo_runs_against_the_stack(
    gateway: str, advoware_url: str, espocrm_url: str, redis_url: str, hub: str
) -> None:
    """`run_party_demo` (wired into `make demo`) with a drain loop standing in for the DAG."""
    import threading

    from devstack.party_demo import run_party_demo

    queue = make_queue(redis_url)
    syncer = make_sync(advoware_url, espocrm_url, redis_url, hub)
    stop = threading.Event()

    def dag_stand_in() -> None:
        while not stop.wait(0.2):
            drain(queue, syncer.sync_party, batch_size=10)

    worker = threading.Thread(target=dag_stand_in, daemon=True)
    worker.start()
    lines: list[str] = []
    try:
        summary = run_party_demo(
            espocrm_url,
            gateway,
            settings=settings(advoware_url, espocrm_url, redis_url, hub),
            timeout_s=30,
            out=lines.append,
        )
    finally:
        stop.set()
        worker.join(timeout=10)
        syncer.close()
    entries = summary["parties"]
    assert len(entries) == 3 and all(e["bet_nr"] for e in entries)
    assert [e["hub_status"] for e in entries] == ["linked", "linked", "unlinked"]
    assert len(advoware_parties(advoware_url)) == 3  # the deleted party is kept in Advoware
    assert not any("Demo-Partei" in line for line in lines)  # ids and counts only, no names
