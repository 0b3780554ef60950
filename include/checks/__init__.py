"""`kanzlei-sync check`: one harmless read per configured service, each with a verdict and the fix.

One module per service (advoware, google, espocrm, hub, redis_store, airflow, smtp), all answering
`Verdict`s (verdict.py); `run.run_all` runs them, and the CLI, the status view and the gateway's
`GET /healthz/deep` show the same result. Nothing here writes, sends a mail or prints a secret.
"""
