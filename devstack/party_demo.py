"""The party part of `make demo`: a CRM user creates, changes and deletes parties in the EspoCRM
sandbox, EspoCRM's webhook sender delivers them to the gateway, the `beteiligte_sync` DAG (triggered
by the gateway) syncs them, and the demo prints what arrived in Advoware: ids and counts only.

Needs the running demo stack: the EspoCRM sandbox, the gateway, Airflow, and the three webhooks
registered in EspoCRM pointing at the gateway (`kanzlei-sync register-webhooks`, secrets in .env).
Call `run_party_demo(espocrm_url, gateway_url)`; it raises DemoError with the reason if a step fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from include.advoware.client import AdvowareClient
from include.espocrm.client import EspoCrmClient
from include.hub.db import Hub
from include.hub.parties import PartyStore
from include.parties import mapping
from include.queue.party_queue import PartyQueue
from include.settings import Settings, get_settings


class DemoError(RuntimeError):
    pass


def _parties(n: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"Demo-Partei {i}",
            "vorname": "Test",
            "ort": "Berlin",
            "strasse": f"Demoweg {i}",
            "plz": "10115",
            "land": "Deutschland",
            "emailAddress": f"demo{i}@mail.example",
            "phoneNumber": f"+49 30 9000{i:03d}",
        }
        for i in range(1, n + 1)
    ]


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise DemoError(
                f"timed out after {timeout_s:.0f}s waiting for {what} "
                "(is Airflow running and the beteiligte_sync DAG unpaused?)"
            )
        time.sleep(0.5)
    return time.monotonic() - started


def run_party_demo(
    espocrm_url: str,
    gateway_url: str,
    *,
    settings: Settings | None = None,
    parties: int = 3,
    timeout_s: float = 120.0,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    settings = settings or get_settings()
    entity = settings.espocrm.entity
    espo = EspoCrmClient(espocrm_url, settings.espocrm.api_key.get_secret_value(), entity=entity)
    user = httpx.Client(base_url=espocrm_url, timeout=30)
    queue = PartyQueue.from_settings(settings)
    store = PartyStore(Hub(settings.postgres.dsn()))
    advoware = AdvowareClient(settings.advoware, redis_url=settings.redis_url)
    try:
        hooks = [
            h
            for h in espo.list_webhooks()
            if h.get("event", "").startswith(f"{entity}.") and h.get("url", "").startswith(gateway_url)
        ]
        if not {h["event"] for h in hooks} >= {f"{entity}.create", f"{entity}.update", f"{entity}.delete"}:
            raise DemoError(
                f"EspoCRM has no create/update/delete webhooks of {entity} pointing at "
                f"{gateway_url}: run `kanzlei-sync register-webhooks` first"
            )

        def flush() -> int:
            r = user.post("/_sandbox/webhooks/flush")
            r.raise_for_status()
            batches = r.json()["batches"]
            failed = [b for b in batches if b["result"] != "delivered"]
            if failed:
                raise DemoError(
                    f"the gateway refused {len(failed)} webhook batches "
                    f"(status {failed[0]['status']}): check ESPOCRM_WEBHOOK_SECRET"
                )
            return sum(b["items"] for b in batches)

        def synced(ids: list[str], removed: tuple[str, ...] = ()) -> Callable[[], bool]:
            def check() -> bool:
                st = queue.stats()
                if st.pending or st.claimed:
                    return False
                for espo_id in ids:
                    link = store.get(espo_id)
                    if espo_id in removed:
                        if link is not None and link.status == "linked":
                            return False
                        continue
                    rec = espo.get(entity, espo_id)
                    if (
                        link is None
                        or link.status != "linked"
                        or link.fingerprint != mapping.map_party(rec).fingerprint
                    ):
                        return False
                return True

            return check

        # 1. a CRM user creates parties
        ids = []
        for body in _parties(parties):
            r = user.post(f"/_sandbox/user/{entity}", json=body)
            r.raise_for_status()
            ids.append(r.json()["id"])
        items = flush()
        took = _wait(synced(ids), timeout_s, "the new parties to reach Advoware")
        out(
            f"parties: created {len(ids)} in EspoCRM ({', '.join(ids)}); {items} webhook items delivered; "
            f"synced to Advoware in {took:.1f}s"
        )

        # 2. one is changed, one is deleted
        changed, removed = ids[0], ids[-1]
        user.put(
            f"/_sandbox/user/{entity}/{changed}", json={"ort": "Hamburg", "emailAddress": "demo-neu@mail.example"}
        ).raise_for_status()
        user.delete(f"/_sandbox/user/{entity}/{removed}").raise_for_status()
        items = flush()
        took = _wait(synced(ids, (removed,)), timeout_s, "the change and the delete to be synced")
        out(f"parties: changed {changed}, deleted {removed}; {items} webhook items delivered; synced in {took:.1f}s")
        flush()  # the integration's own write-back may echo (webhooks without skipOwn): it must stay quiet

        # 3. what arrived in Advoware (ids and counts only)
        summary: dict[str, Any] = {"parties": []}
        for espo_id in ids:
            link = store.get(espo_id)
            entry = {
                "espo_id": espo_id,
                "bet_nr": link.bet_nr if link else None,
                "hub_status": link.status if link else None,
            }
            if link and link.bet_nr:
                record = advoware.get_beteiligter(link.bet_nr)
                entry["kommunikationen"] = len(record.get("kommunikation") or [])
            summary["parties"].append(entry)
            out(
                f"  EspoCRM {espo_id} -> Advoware betNr {entry['bet_nr']} ({entry['hub_status']}, "
                f"{entry.get('kommunikationen', 0)} Kommunikationen)"
            )
        stats = queue.stats()
        summary["queue"] = {"pending": stats.pending, "claimed": stats.claimed, **stats.counters}
        summary["hub"] = store.counts()
        out(
            f"parties: hub links {summary['hub']}; queue pending {stats.pending}, "
            f"deliveries {stats.counters.get('deliveries', 0)}, duplicates {stats.counters.get('duplicates', 0)}"
        )
        return summary
    finally:
        espo.close()
        user.close()
        store.close()
        advoware.close()
        queue.r.close()
