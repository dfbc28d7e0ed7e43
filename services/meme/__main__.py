"""`python -m services.meme`: serve the meme service until SIGTERM/SIGINT."""

from __future__ import annotations

import uvloop
from aiohttp import web

from services.meme.bootstrap import build_app
from shared.logging import configure_logging
from shared.settings import Settings

# In-flight AI calls get this long to finish after a stop signal; new ones are refused.
SHUTDOWN_TIMEOUT_S = 30.0


def main() -> None:
    settings = Settings()
    configure_logging("meme", settings.log_level)
    web.run_app(
        build_app(settings),
        host=settings.meme_host,
        port=settings.meme_port,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
