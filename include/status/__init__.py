"""The sync status view: what the firm's administrator sees about the integration, without client data.

`queries` reads ids, counts and outcomes from the hub and the party queue (never a text column that
could hold appointment or party data); `page` renders them as escaped HTML; `app` serves both as a
small FastAPI app that the Airflow plugin (plugins/sync_status_plugin.py) mounts at /sync-status.
Nothing here imports Airflow: the plugin passes in where the hub and Redis are and how to authenticate.
"""
