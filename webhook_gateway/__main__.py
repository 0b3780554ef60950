"""`python -m webhook_gateway`: serve the gateway on GATEWAY_HOST:GATEWAY_PORT, with the edge limits
of webhook_gateway/server.py (timeouts, head size, connection cap)."""

from __future__ import annotations

import logging

import uvicorn

from include.settings import get_settings
from webhook_gateway.app import create_app
from webhook_gateway.server import uvicorn_config


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()


if __name__ == "__main__":
    main()
