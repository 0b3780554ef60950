"""The project's Airflow adapters, laid out as an Airflow provider (the only code that imports Airflow).

- `hooks/`: a connection → the ready client (`get_conn()`), one per system: Advoware, EspoCRM,
  Google Calendar, the sync hub (PostgreSQL), Redis.
- `sensors/`, `triggers/`: the wait of `beteiligte_sync` for queued party work.
- `notifiers/`: the alert mails and the DAGs' callbacks.
- `executors/`: the preloading LocalExecutor, the Celery configuration, the workers' host names.
- `tasks/`: what each DAG task calls (one call per task); `dag_defaults.py`: the DAGs' retry policy.
- `deployment/`: what a deployment sets up in Airflow (pools, users, SQLite's connect arguments).
- `connections.py`: every connection id; `get_provider_info.py`: the provider's metadata.

This package imports nothing itself: `connections` stays importable without Airflow (include/airflow_env.py).
"""
