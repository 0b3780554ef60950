"""Redis work queues (EspoCRM party changes waiting for the beteiligte_sync DAG)."""
