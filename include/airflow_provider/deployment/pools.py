"""The API pools the calendar DAG's tasks run in, created by compose's airflow-init
(`kanzlei-sync airflow pools`): a task whose pool is missing never starts, so a fresh deployment must
have them before its first run. Created when missing, never changed: an administrator's resize stays."""

from __future__ import annotations

GOOGLE_POOL, ADVOWARE_POOL = "google_calendar_api", "advoware_api"

# name -> (slots, description); 4 each = AIRFLOW__CORE__PARALLELISM of the compose files.
POOLS: dict[str, tuple[int, str]] = {
    GOOGLE_POOL: (4, "calendar sync: concurrent calls to the Google Calendar API"),
    ADVOWARE_POOL: (4, "calendar sync: concurrent calls to the Advoware API"),
}


def ensure() -> list[str]:
    """Create the missing pools in Airflow's metadata database; one line per pool (idempotent)."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    lines = []
    with create_session() as session:
        for name, (slots, description) in POOLS.items():
            pool = session.query(Pool).filter(Pool.pool == name).one_or_none()
            if pool is not None:
                lines.append(f"pool {name}: exists with {pool.slots} slots (left as it is)")
                continue
            session.add(Pool(pool=name, slots=slots, description=description, include_deferred=False))
            lines.append(f"pool {name}: created ({slots} slots)")
    return lines
