"""Run the gateway: `python -m services.gateway`."""

from __future__ import annotations

import uvloop
from aiohttp import web

from services.gateway.bootstrap import build_app
from shared.logging import configure_logging
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings.log_level)
    uvloop.install()
    web.run_app(
        build_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        access_log=None,
        print=None,
        reuse_port=True,
        shutdown_timeout=10,
    )


if __name__ == "__main__":
    main()
