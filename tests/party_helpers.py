"""Helpers of the party-sync tests: clients on the sandboxes, the CRM user, Advoware state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import redis

from include.advoware.client import AdvowareClient
from include.espocrm.client import EspoCrmClient
from include.hub.db import Hub
from include.hub.parties import PartyStore
from include.parties.sync import PartySync
from include.queue.party_queue import PartyQueue
from include.settings import AdvowareSettings, EspoCrmSettings, PostgresSettings, Settings, SyncSettings
from sandbox import advoware as adv_sbx

ENTITY = "CBeteiligte"
ESPO_KEY = "sandbox-espocrm-key"


def advoware_settings(url: str, **kw: Any) -> AdvowareSettings:
    values: dict[str, Any] = dict(
        base_url=url,
        auth_url="",
        configurator_url="",
        username=adv_sbx.USERNAME,
        password=adv_sbx.PASSWORD,
        app_id=adv_sbx.APP_ID,
        api_key=adv_sbx.API_KEY,
        kanzlei=adv_sbx.KANZLEI,
        database=adv_sbx.DATABASE,
        write_protection=False,
        timeout_s=5.0,
        max_retries=2,
    )
    values.update(kw)
    return AdvowareSettings(**values)


def settings(advoware_url: str, espocrm_url: str, redis_url: str, hub_dsn: str, **sync: Any) -> Settings:
    info = psycopg.conninfo.conninfo_to_dict(hub_dsn)
    return Settings(
        redis_url=redis_url,
        advoware=advoware_settings(advoware_url),
        espocrm=EspoCrmSettings(base_url=espocrm_url, api_key=ESPO_KEY, entity=ENTITY),
        postgres=PostgresSettings(
            host=info.get("host", "127.0.0.1"),
            port=int(info.get("port", 5432)),
            db=info["dbname"],
            user=info.get("user", "postgres"),
        ),
        sync=SyncSettings(**sync),
    )


def make_sync(
    advoware_url: str,
    espocrm_url: str,
    redis_url: str,
    hub_dsn: str,
    *,
    hard_delete: bool = False,
    write_protection: bool = False,
) -> PartySync:
    espo = EspoCrmClient(espocrm_url, ESPO_KEY, 5.0, max_retries=1, backoff_initial_s=0.01)
    advoware = AdvowareClient(
        advoware_settings(advoware_url, write_protection=write_protection),
        redis_client=redis.Redis.from_url(redis_url),
        backoff_base_s=0.01,
    )
    return PartySync(espo, advoware, PartyStore(Hub(hub_dsn)), entity=ENTITY, hard_delete=hard_delete)


def make_queue(redis_url: str, **kw: Any) -> PartyQueue:
    kw.setdefault("backoff_base_s", 0.05)
    kw.setdefault("backoff_max_s", 0.5)
    return PartyQueue(redis.Redis.from_url(redis_url), **kw)


class CrmUser:
    """A person working in EspoCRM (the sandbox's /_sandbox/user routes: webhooks without skipOwn)."""

    def __init__(self, espocrm_url: str) -> None:
        self.http = httpx.Client(base_url=espocrm_url, timeout=10)

    def create(self, **data: Any) -> dict[str, Any]:
        r = self.http.post(f"/_sandbox/user/{ENTITY}", json=data)
        r.raise_for_status()
        return r.json()

    def update(self, espo_id: str, **data: Any) -> dict[str, Any]:
        r = self.http.put(f"/_sandbox/user/{ENTITY}/{espo_id}", json=data)
        r.raise_for_status()
        return r.json()

    def delete(self, espo_id: str) -> None:
        self.http.delete(f"/_sandbox/user/{ENTITY}/{espo_id}").raise_for_status()

    def record(self, espo_id: str) -> dict[str, Any] | None:
        r = self.http.get(f"/api/v1/{ENTITY}/{espo_id}", headers={"X-Api-Key": ESPO_KEY})
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def records(self) -> dict[str, dict[str, Any]]:
        state = self.http.get("/_sandbox/state").json()
        return {r["id"]: r for r in state["records"].get(ENTITY, [])}

    def flush(self) -> dict[str, Any]:
        r = self.http.post("/_sandbox/webhooks/flush")
        r.raise_for_status()
        return r.json()


def advoware_parties(advoware_url: str) -> dict[int, dict[str, Any]]:
    state = httpx.get(f"{advoware_url}/_sandbox/state", timeout=30).json()
    return {int(b["betNr"]): b for b in state["beteiligte"]}


def advoware_writes(advoware_url: str) -> dict[str, int]:
    return httpx.get(f"{advoware_url}/_sandbox/stats", timeout=10).json()["writes"]


def total_party_writes(advoware_url: str) -> int:
    return sum(n for k, n in advoware_writes(advoware_url).items() if k.startswith(("Beteiligte.", "Kommunikationen.")))


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


def links(hub_dsn: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(hub_dsn, row_factory=psycopg.rows.dict_row) as conn:
        return {r["espo_id"]: r for r in conn.execute("SELECT * FROM party_links").fetchall()}
