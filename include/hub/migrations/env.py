"""Alembic environment: plain SQL migrations, no ORM metadata."""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config

# Two processes migrating at once (gateway and Airflow start together) take turns. A session-level
# lock on a connection of its own, held for the whole upgrade: a transaction-level lock would end with
# the first migration's transaction (transaction_per_migration), and the waiting process would then
# run the later migrations alongside the first one. Released when the holder's connection ends.
MIGRATION_LOCK = 727274


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # alembic_config() in include.hub.db always sets it
        raise RuntimeError("the Alembic configuration has no sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock_conn:
        lock_conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        try:
            with engine.connect() as connection:  # reads the current revision only after the lock
                context.configure(connection=connection, transaction_per_migration=True)
                with context.begin_transaction():
                    context.run_migrations()
        finally:
            lock_conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")


run_migrations_online()
