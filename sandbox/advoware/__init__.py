"""Advoware sandbox: `create_app()` builds the FastAPI app (see app.py for endpoints and names)."""

from sandbox.advoware.app import create_app
from sandbox.advoware.gateway import API_KEY, APP_ID, DATABASE, KANZLEI, PASSWORD, USERNAME
from sandbox.advoware.store import KOMM_KZ

__all__ = ["API_KEY", "APP_ID", "DATABASE", "KANZLEI", "KOMM_KZ", "PASSWORD", "USERNAME", "create_app"]
