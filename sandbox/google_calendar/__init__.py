"""Google Calendar API v3 sandbox (see docs/external-apis.md and docs/interfaces.md)."""

from .app import create_app

__all__ = ["create_app"]
