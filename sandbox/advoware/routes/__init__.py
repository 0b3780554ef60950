"""The Advoware sandbox's routers, one per resource (sandbox/advoware/app.py composes them)."""
