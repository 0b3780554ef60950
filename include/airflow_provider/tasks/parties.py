"""What the party DAG's tasks call, built from Airflow connections: the queue (`redis_default`),
EspoCRM (`espocrm_default`), Advoware (`advoware_default`, sharing the queue's Redis for its token),
the hub (`sync_hub_default`); the alert on open party dead letters wired in."""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context

from include.airflow_provider.hooks.advoware import AdvowareHook
from include.airflow_provider.hooks.espocrm import EspoCrmHook
from include.airflow_provider.hooks.hub import HubHook
from include.airflow_provider.hooks.redis import redis_url
from include.airflow_provider.notifiers.alerts import check_party_dead_letters
from include.alerts import Incidents
from include.hub.parties import PartyStore
from include.parties.drain import drain_run
from include.parties.sync import PartySync
from include.queue.party_queue import PartyQueue
from include.settings import get_settings


def drain_queue() -> dict[str, Any]:
    """`beteiligte_sync`'s drain_queue task: drain the party queue into Advoware (include/parties)."""
    return drain_from_connections(get_current_context()["run_id"])


def drain_from_connections(run_id: str | None) -> dict[str, Any]:
    settings = get_settings().sync
    url = redis_url()
    queue = PartyQueue.from_url(url, max_attempts=settings.party_max_attempts, lease_s=settings.party_lease_s)
    hub = HubHook().get_conn()
    syncer = PartySync(
        EspoCrmHook().get_conn(),
        AdvowareHook(redis_url=url).get_conn(),
        PartyStore(hub),
        hard_delete=settings.party_hard_delete,
    )
    try:
        return drain_run(
            queue,
            syncer,
            hub,
            run_id,
            settings,
            open_dead_letters=lambda n: check_party_dead_letters(n, Incidents(queue.r)),
        )
    finally:
        syncer.close()
        hub.close()
        queue.r.close()
