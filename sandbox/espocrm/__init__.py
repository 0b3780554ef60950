"""EspoCRM sandbox: REST API (/api/v1), signed webhook sender, admin routes. See `app.py`."""

from sandbox.espocrm.app import create_app

__all__ = ["create_app"]
