"""Run the ledger worker with its health and metrics port: `python -m services.ledger`."""

from __future__ import annotations

import uvloop
from aiohttp import web

from services.ledger.bootstrap import build_app
from shared.logging import configure_logging
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("ledger", settings.log_level)
    uvloop.install()
    web.run_app(
        build_app(settings),
        host=settings.ledger_host,
        port=settings.ledger_port,
        access_log=None,
        print=None,
        shutdown_timeout=settings.visibility_timeout_s,
    )


if __name__ == "__main__":
    main()
