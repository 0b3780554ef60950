"""Soak test: 10,000 webhook deliveries for 2,000 distinct parties, 30 % exact re-deliveries,
shuffled, creates / updates / deletes interleaved; the Airflow API unavailable part of the time; one
worker (a subprocess running the drain loop) killed with SIGKILL in the middle of a batch.

Every delivery goes through the real gateway endpoint (`POST /webhooks/vmh/beteiligte/{event}`),
signed as EspoCRM signs (Signature header, per-webhook secret). The changes themselves are made
in the EspoCRM sandbox by a CRM user before their delivery is sent. Workers: the DAG's drain as run
by (a) a stand-in scheduler that starts a drain for every run the gateway triggered through the
(fake) Airflow REST API, (b) a sweep every 2 s (the 5-minute schedule, compressed), (c) the
subprocess worker that is killed; its claims come back after their lease and others finish them.

Afterwards: every party's state in Advoware equals its final state in EspoCRM; nothing was lost (no
dead letter, nothing left in the queue); no change was applied twice (per party, the Advoware writes
never exceed the changes made to it; no duplicate Advoware records); the duplicate count is reported.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from include.hub.db import Hub, connect
from include.parties import mapping
from include.parties.drain import drain, hub_dead_letter_sink
from include.settings import AirflowApiSettings, EspoCrmSettings, GatewaySettings
from sandbox import advoware as adv_sbx
from sandbox.espocrm.webhooks import encode_body, sign
from sandbox.runner import ServerThread, free_port
from tests.integration.test_airflow_api import PASSWORD, USER, make_fake_airflow
from tests.party_helpers import (
    ENTITY,
    ESPO_KEY,
    CrmUser,
    advoware_parties,
    advoware_writes,
    links,
    make_queue,
    make_sync,
    settings,
    wait_for,
)
from webhook_gateway.app import create_app

ROOT = Path(__file__).resolve().parents[2]
PARTIES, DELIVERIES, DUPLICATE_SHARE, DELETE_SHARE = 2000, 10_000, 0.30, 0.15
CHUNKS = 10
HOOK_ID, SECRET = "6650soak00000hook", "soak-webhook-secret"
BODY_FIELDS = ("ort", "strasse", "vorname")  # an update changes one of these, or a communication
KOMM_FIELDS = ("emailAddress", "phoneNumber")


def plan(rng: random.Random) -> list[tuple[int, str]]:
    """(party index, op) in a random interleaving that keeps each party's own order."""
    distinct = round(DELIVERIES * (1 - DUPLICATE_SHARE))
    deletes = round(PARTIES * DELETE_SHARE)
    per_party: dict[int, list[str]] = {i: ["create"] for i in range(PARTIES)}
    for _ in range(distinct - PARTIES - deletes):
        per_party[rng.randrange(PARTIES)].append("update")
    for i in rng.sample(range(PARTIES), deletes):
        per_party[i].append("delete")
    slots = [i for i, ops in per_party.items() for _ in ops]
    rng.shuffle(slots)
    cursor: Counter[int] = Counter()
    out = []
    for i in slots:
        out.append((i, per_party[i][cursor[i]]))
        cursor[i] += 1
    return out


class Scheduler:
    """Stands in for Airflow's scheduler: runs a drain for every queued run of the fake API (one at
    a time, max_active_runs=1), and a sweep every `sweep_s`."""

    def __init__(self, fake_airflow: Any, make_drain: Any, sweep_s: float = 2.0) -> None:
        self.app, self.make_drain, self.sweep_s = fake_airflow, make_drain, sweep_s
        self.stop = threading.Event()
        self.runs = Counter()
        self.threads = [
            threading.Thread(target=self._triggered, daemon=True),
            threading.Thread(target=self._sweep, daemon=True),
        ]

    def start(self) -> Scheduler:
        for t in self.threads:
            t.start()
        return self

    def _triggered(self) -> None:
        run_drain = self.make_drain()
        while not self.stop.is_set():
            queued = [r for r in list(self.app.state.runs.values()) if r["state"] == "queued"]
            if not queued:
                time.sleep(0.1)
                continue
            queued[0]["state"] = "running"
            run_drain()
            queued[0]["state"] = "success"
            self.runs["triggered"] += 1

    def _sweep(self) -> None:
        run_drain = self.make_drain()
        while not self.stop.wait(self.sweep_s):
            run_drain()
            self.runs["sweep"] += 1

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def start_worker(advoware_url: str, espocrm_url: str, redis_url: str, hub: str) -> subprocess.Popen:
    info = psycopg.conninfo.conninfo_to_dict(hub)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "POSTGRES_HOST": info.get("host", "127.0.0.1"),
        "POSTGRES_PORT": str(info.get("port", 5432)),
        "POSTGRES_DB": info["dbname"],
        "POSTGRES_USER": info.get("user", "postgres"),
        "POSTGRES_PASSWORD": "",
        "ADVOWARE_BASE_URL": advoware_url,
        "ADVOWARE_AUTH_URL": "",
        "ADVOWARE_CONFIGURATOR_URL": "",
        "ADVOWARE_USERNAME": adv_sbx.USERNAME,
        "ADVOWARE_PASSWORD": adv_sbx.PASSWORD,
        "ADVOWARE_APP_ID": adv_sbx.APP_ID,
        "ADVOWARE_API_KEY": adv_sbx.API_KEY,
        "ADVOWARE_KANZLEI": adv_sbx.KANZLEI,
        "ADVOWARE_DATABASE": adv_sbx.DATABASE,
        "ADVOWARE_WRITE_PROTECTION": "false",
        "ESPOCRM_BASE_URL": espocrm_url,
        "ESPOCRM_API_KEY": ESPO_KEY,
        "ESPOCRM_ENTITY": ENTITY,
        "SYNC_PARTY_MAX_ATTEMPTS": "10",
        "SYNC_PARTY_HARD_DELETE": "false",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "include.cli",
            "drain",
            "--batch-size",
            "100",
            "--lease-s",
            "2",
            "--backoff-base-s",
            "0.2",
            "--poll-s",
            "0.2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.timeout(300)
def test_soak(advoware_url: str, espocrm_url: str, redis_url: str, hub: str) -> None:
    started = time.monotonic()
    rng = random.Random(6)
    user = CrmUser(espocrm_url)
    queue = make_queue(redis_url, max_attempts=10, lease_s=10, backoff_base_s=0.2, backoff_max_s=2)

    # the fake Airflow API: down at first, up in the middle, down again at the end
    fake_airflow = make_fake_airflow()
    airflow_port = free_port()
    s = settings(advoware_url, espocrm_url, redis_url, hub)
    s.espocrm = EspoCrmSettings(
        base_url=espocrm_url, api_key=ESPO_KEY, entity=ENTITY, webhook_secret=f"{HOOK_ID}={SECRET}"
    )
    s.airflow_api = AirflowApiSettings(
        url=f"http://127.0.0.1:{airflow_port}", username=USER, password=PASSWORD, timeout_s=0.5
    )
    s.gateway = GatewaySettings(api_token="soak-token")

    syncers = []

    def make_drain():  # noqa: ANN202 - one PartySync per worker thread
        syncer = make_sync(advoware_url, espocrm_url, redis_url, hub)
        syncers.append(syncer)
        sink = hub_dead_letter_sink(Hub(hub))
        return lambda: drain(queue, syncer.sync_party, batch_size=25, dead_letter_sink=sink)

    changes: dict[int, Counter[str]] = defaultdict(Counter)  # party → kinds of change made to it
    ids: dict[int, str] = {}
    sent: list[tuple[str, bytes]] = []
    answers = Counter()
    gateway = ServerThread(create_app(s)).start()
    scheduler = Scheduler(fake_airflow, make_drain).start()
    airflow: ServerThread | None = None
    worker: subprocess.Popen | None = None
    orphaned: list[str] = []
    http = httpx.Client(base_url=gateway.url, timeout=30, limits=httpx.Limits(max_connections=8))

    def post(delivery: tuple[str, bytes]) -> None:
        event, body = delivery
        headers = {"Content-Type": "application/json", **sign(HOOK_ID, SECRET, body)}
        for _ in range(20):  # EspoCRM retries a 503; nothing else may fail
            r = http.post(f"/webhooks/vmh/beteiligte/{event}", content=body, headers=headers)
            if r.status_code != 503:
                break
            time.sleep(0.1)
        assert r.status_code == 200, r.text
        data = r.json()
        answers["accepted"] += data["accepted"]
        answers["duplicates"] += data["duplicates"]
        answers["deliveries"] += 1

    def change(index: int, op: str) -> tuple[str, bytes]:
        n = sum(changes[index].values())
        if op == "create":
            rec = user.create(
                name=f"Partei {index}",
                vorname=f"V{index}",
                ort="Berlin",
                strasse=f"Weg {index}",
                emailAddress=f"p{index}@mail.example",
                phoneNumber=f"+49 30 {index:06d}",
            )
            ids[index] = rec["id"]
            changes[index]["create"] += 1
            return "create", encode_body([rec])
        espo_id = ids[index]
        if op == "delete":
            user.delete(espo_id)
            changes[index]["delete"] += 1
            return "delete", encode_body([{"id": espo_id}])
        field = rng.choice(BODY_FIELDS + KOMM_FIELDS)
        value = {"emailAddress": f"p{index}.{n}@mail.example", "phoneNumber": f"+49 40 {index:06d}{n}"}.get(
            field, f"{field} {index}.{n}"
        )
        user.update(espo_id, **{field: value})
        changes[index]["komm" if field in KOMM_FIELDS else "body"] += 1
        return "update", encode_body([{"id": espo_id, field: value}])

    killer: threading.Thread | None = None
    killed_after: list[int] = []

    def kill_after_claim(proc: subprocess.Popen) -> None:
        line = proc.stdout.readline()  # {"claimed": [...]}, printed right after its claim
        claimed = json.loads(line)["claimed"]

        def done() -> int:
            return sum(queue.r.zscore(queue.keys.claimed, i) is None for i in claimed)

        wait_for(lambda: done() >= 3, timeout_s=30, interval_s=0.01)  # a few of its batch are done
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_after.append(done())
        # still claimed by the dead worker (nobody else may take them before the lease runs out)
        orphaned.extend(i for i in claimed if queue.r.zscore(queue.keys.claimed, i) is not None)

    ops = plan(rng)
    chunk = len(ops) // CHUNKS
    duplicates_per_chunk = round(DELIVERIES * DUPLICATE_SHARE) // CHUNKS
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for c in range(CHUNKS):
                if c == 3:
                    airflow = ServerThread(fake_airflow, port=airflow_port).start()
                if c == 7 and airflow is not None:
                    airflow.stop()
                    airflow = None
                fresh = [change(i, op) for i, op in ops[c * chunk : (c + 1) * chunk if c < CHUNKS - 1 else None]]
                sent.extend(fresh)
                deliveries = fresh + [rng.choice(sent) for _ in range(duplicates_per_chunk)]
                rng.shuffle(deliveries)
                if c == 4:  # a worker joins, claims a batch and is killed in the middle of it
                    worker = start_worker(advoware_url, espocrm_url, redis_url, hub)
                    killer = threading.Thread(target=kill_after_claim, args=(worker,), daemon=True)
                    killer.start()
                list(pool.map(post, deliveries))
        if killer is not None:
            killer.join(timeout=60)
        assert orphaned and killed_after, "the worker was not killed in the middle of a batch"

        # the end: Airflow stays down; the sweep finishes what is left (incl. the killed worker's claims)
        def settled() -> bool:
            st = queue.stats()
            return st.pending == 0 and st.claimed == 0

        wait_for(settled, timeout_s=120, interval_s=0.5)
    finally:
        scheduler.close()
        http.close()
        if airflow is not None:
            airflow.stop()
        gateway.stop()
        if worker is not None and worker.poll() is None:
            worker.kill()
        for syncer in syncers:
            syncer.close()

    # -- verification ----------------------------------------------------------------------------
    espo = user.records()
    parties = advoware_parties(advoware_url)
    hub_links = links(hub)
    deleted = {i for i, c in changes.items() if c["delete"]}
    assert answers["deliveries"] == DELIVERIES
    assert answers["duplicates"] == round(DELIVERIES * DUPLICATE_SHARE)  # every exact re-delivery recognised

    for index, espo_id in ids.items():
        link = hub_links.get(espo_id)
        if index in deleted:
            assert espo_id not in espo
            # never reached Advoware, or reached it and is kept there, unlinked
            assert link is None or (link["status"] == "unlinked" and link["bet_nr"] in parties), (index, link)
            continue
        record = espo[espo_id]
        want = mapping.map_party(record)
        assert link is not None and link["status"] == "linked", (index, link)
        have_body, have_komms = mapping.advoware_content(parties[link["bet_nr"]])
        assert mapping.changed_fields(want.body, have_body) == {}, index
        assert have_komms == want.komms, index
        assert record[mapping.FIELD_BET_NR] == link["bet_nr"] and record[mapping.FIELD_SYNC_STATUS] == "synced"

    # no duplicate Advoware records: every record belongs to exactly one party link
    linked = [lk["bet_nr"] for lk in hub_links.values() if lk["bet_nr"] is not None]
    assert sorted(linked) == sorted(parties)
    writes = advoware_writes(advoware_url)
    assert writes.get("Beteiligte.create", 0) == len(parties)
    # no change applied twice: per party, writes never exceed the changes made to it
    with psycopg.connect(hub) as conn:
        audit = conn.execute(
            "SELECT method, target FROM write_audit WHERE actor = 'beteiligte_sync' AND status = 200"
        ).fetchall()
    by_bet: dict[int, Counter[str]] = defaultdict(Counter)
    for _method, target in audit:
        parts = target.split("/")
        if len(parts) > 1:
            kind = "komm" if "Kommunikationen" in target else "body"
            by_bet[int(parts[1])][kind] += 1
    bet_to_index = {
        hub_links[ids[i]]["bet_nr"]: i for i in ids if ids[i] in hub_links and hub_links[ids[i]]["bet_nr"] is not None
    }
    for bet_nr, counted in by_bet.items():
        made = changes[bet_to_index[bet_nr]]
        assert counted["body"] <= made["body"], (bet_nr, counted, made)
        assert counted["komm"] <= 2 + made["komm"], (bet_nr, counted, made)  # 2 = the first e-mail + phone
    total_changes = sum(sum(c.values()) for c in changes.values())
    party_writes = sum(n for k, n in writes.items() if k.startswith(("Beteiligte.", "Kommunikationen.")))
    # the killed worker may have written once without living to audit it
    assert 0 <= party_writes - len(audit) <= 1
    with connect(hub) as conn:
        open_letters = conn.execute("SELECT count(*) AS n FROM dead_letters WHERE replayed_at IS NULL").fetchone()
    assert open_letters["n"] == 0
    for espo_id in orphaned:  # the killed worker's batch was finished by the others
        idx = next(i for i, e in ids.items() if e == espo_id)
        assert idx in deleted or hub_links[espo_id]["status"] == "linked"

    report = {
        "soak": "parties",
        "deliveries": answers["deliveries"],
        "distinct_ids": len(ids),
        "duplicates": answers["duplicates"],
        "changes_in_espocrm": total_changes,
        "advoware_writes": party_writes,
        "advoware_records": len(parties),
        "deleted_in_espocrm": len(deleted),
        "orphaned_by_kill": len(orphaned),
        "done_by_killed_worker": killed_after[0],
        "runs": dict(scheduler.runs),
        "airflow_trigger_calls": fake_airflow.state.trigger_calls,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report))
    assert fake_airflow.state.trigger_calls > 0 and scheduler.runs["triggered"] > 0
