"""`python -m webhook_gateway`: serve the gateway with uvicorn on GATEWAY_PORT."""

from __future__ import annotations

import logging

import uvicorn

from include.settings import get_settings
from webhook_gateway.app import create_app


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.gateway.host, port=settings.gateway.port,
                access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
