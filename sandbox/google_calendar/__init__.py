"""Google Calendar API v3 sandbox (see /work/shared/contracts/google-calendar.md and docs/interfaces.md)."""

from .app import create_app

__all__ = ["create_app"]
