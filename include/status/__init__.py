"""The sync status view: what the firm's administrator sees about the integration, without client data.

`queries` reads ids, counts and outcomes from the hub and the party queue (never a text column that
could hold appointment or party data); `page` renders them as escaped HTML (`chart`: the 7-day charts
as inline SVG); `replay` is the one write, a dead letter's replay, and its CSRF token; `app` serves it
all as a small FastAPI app that the Airflow plugin (plugins/sync_status_plugin.py) mounts at
/sync-status. Nothing here imports Airflow: the plugin passes in where the hub and Redis are, how to
authenticate, and (its `Host`) who the user is, what they may do, how a run is triggered, UI links.
"""
