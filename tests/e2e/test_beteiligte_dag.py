"""The `beteiligte_sync` DAG under `dag.test()` against the EspoCRM and Advoware sandboxes, the real hub
and Redis: connections come from AIRFLOW_CONN_* (built by include.airflow_env, as in deployment), work
is enqueued through the real queue API, and the test checks what arrived in Advoware and EspoCRM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from include import airflow_env
from include.parties import mapping
from tests.party_helpers import CrmUser, advoware_parties, links, make_queue, settings

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """dag.test() needs a migrated metadata DB (SQLite in the session's AIRFLOW_HOME)."""
    assert os.environ["AIRFLOW_HOME"] != str(Path.home() / "airflow")
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def connections(
    monkeypatch: pytest.MonkeyPatch, advoware_url: str, espocrm_url: str, redis_url: str, hub: str, tmp_path: Path
) -> None:
    s = settings(advoware_url, espocrm_url, redis_url, hub)
    env = airflow_env.connections(s, root=tmp_path)
    for cid in ("ADVOWARE_DEFAULT", "ESPOCRM_DEFAULT", "REDIS_DEFAULT", "SYNC_HUB_DEFAULT"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{cid}", env[f"AIRFLOW_CONN_{cid}"])
    monkeypatch.setenv("SYNC_PARTY_BATCH_SIZE", "2")  # several claims per run: the drain loop is exercised
    monkeypatch.setenv("SYNC_PARTY_LEASE_S", "60")
    monkeypatch.setenv("REDIS_URL", redis_url)  # the Advoware token cache stays in the test's database
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))


def _dag():  # -> airflow.sdk.DAG
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "beteiligte_sync.py"), safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags["beteiligte_sync"]


def test_dag_shape() -> None:
    dag = _dag()
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.timetable.expression == "*/5 * * * *"
    assert dag.doc_md and "beteiligte_sync" in dag.doc_md
    sensor, drain = dag.get_task("work_queued"), dag.get_task("drain_queue")
    assert type(sensor).__name__ == "PartyWorkSensor" and sensor.idle_timeout_s > 0
    assert drain.upstream_task_ids == {"work_queued"}
    assert drain.retries >= 1 and float(drain.retry_exponential_backoff) == 2.0 and drain.max_retry_delay


def test_run_drains_the_queue_into_advoware(
    airflow_db: None, connections: None, advoware_url: str, espocrm_url: str, redis_url: str, hub: str
) -> None:
    from airflow.sdk import DagRunState

    user = CrmUser(espocrm_url)
    kept = user.create(name="Müller", vorname="Jan", ort="Köln", emailAddress="jan@mail.example")
    changed = user.create(name="Weber GmbH", rechtsform="GmbH", phoneNumber="+49 221 12345")
    gone = user.create(name="Kurz", vorname="Eva")
    queue = make_queue(redis_url)
    queue.enqueue([kept["id"], changed["id"], gone["id"]], "create")
    user.update(changed["id"], ort="Bonn")
    queue.enqueue([changed["id"]], "update")
    user.delete(gone["id"])
    queue.enqueue([gone["id"]], "delete")

    run = _dag().test()
    assert run.state == DagRunState.SUCCESS

    parties = advoware_parties(advoware_url)
    hub_links = links(hub)
    assert set(hub_links) == {kept["id"], changed["id"]}  # the deleted one never reached Advoware
    assert len(parties) == 2
    weber = parties[hub_links[changed["id"]]["bet_nr"]]
    assert (weber["name"], weber["ort"]) == ("Weber GmbH", "Bonn")
    assert [(k["kommKz"], k["tlf"]) for k in weber["kommunikation"]] == [(1, "+49 221 12345")]
    for espo_id in (kept["id"], changed["id"]):
        rec = user.record(espo_id)
        assert rec[mapping.FIELD_BET_NR] == hub_links[espo_id]["bet_nr"]
        assert rec[mapping.FIELD_SYNC_STATUS] == "synced"
    stats = queue.stats()
    assert (stats.pending, stats.claimed) == (0, 0)

    # a second run with an empty queue: the wait gives up quietly (skipped), nothing is written
    before = advoware_parties(advoware_url)
    dag = _dag()
    dag.get_task("work_queued").idle_timeout_s = 1
    second = dag.test()
    assert second.state == DagRunState.SUCCESS
    assert second.get_task_instance("drain_queue").state == "skipped"
    assert advoware_parties(advoware_url) == before


def test_each_drain_writes_its_party_run_row(
    airflow_db: None, connections: None, advoware_url: str, espocrm_url: str, redis_url: str, hub: str
) -> None:
    """The status view's "Last party run" is this DAG's run: id, outcome and the drain's counts."""
    from airflow.sdk import DagRunState

    from include.status.queries import Sources, collect

    user = CrmUser(espocrm_url)
    ids = [user.create(name=f"Partei {n}")["id"] for n in range(3)]
    make_queue(redis_url).enqueue(ids, "create")

    run = _dag().test()
    assert run.state == DagRunState.SUCCESS
    party_run = collect(Sources.from_urls(hub, redis_url))["party_run"]
    assert party_run is not None, "no sync_runs row of kind 'beteiligte' after a drain"
    assert (party_run["run_id"], party_run["status"], party_run["error"]) == (run.run_id, "success", None)
    counts = party_run["counts"]
    assert (counts["claimed"], counts["acked"], counts["retried"], counts["dead"]) == (3, 3, 0, 0)
    assert counts["batches"] == 2 and counts["created"] == 3  # batch size 2: two claims
    assert counts["advoware_writes"] == sum(1 for _ in advoware_parties(advoware_url)) == 3
    assert party_run["started_at"] <= party_run["finished_at"]

    # an idle sweep (drain skipped) leaves the last drain's row as the last party run
    dag = _dag()
    dag.get_task("work_queued").idle_timeout_s = 1
    assert dag.test().state == DagRunState.SUCCESS
    assert collect(Sources.from_urls(hub, redis_url))["party_run"]["run_id"] == run.run_id


def test_a_party_that_cannot_be_written_is_parked_and_mailed(
    airflow_db: None,
    connections: None,
    espocrm_url: str,
    redis_url: str,
    hub: str,
    smtp_sink: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A party Advoware will never take ends in the dead letters after its last attempt, the run still
    succeeds for the others, and the administrator gets one mail once the threshold is reached."""
    from airflow.sdk import DagRunState

    from include.hub import dead_letters
    from include.hub.db import connect

    monkeypatch.setenv("SYNC_PARTY_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("ALERT_PARTY_DEAD_LETTERS", "1")
    user = CrmUser(espocrm_url)
    good = user.create(name="Gut GmbH")
    bad = user.create(name="")  # Advoware needs a name
    make_queue(redis_url, max_attempts=1).enqueue([good["id"], bad["id"]], "create")

    run = _dag().test()
    assert run.state == DagRunState.SUCCESS
    assert set(links(hub)) == {good["id"]}
    with connect(hub) as conn:
        letters = dead_letters.list_(conn, source="beteiligte_sync")
    assert [d["entity_id"] for d in letters] == [bad["id"]]
    subjects = [m["Subject"] for m in smtp_sink.messages]  # type: ignore[attr-defined]
    assert len(subjects) == 1 and "1 open party dead letters" in subjects[0]
    assert "Gut GmbH" not in smtp_sink.messages[0].as_string()  # type: ignore[attr-defined]
