"""Run a service's aiohttp application the same way for all three services."""

from __future__ import annotations

from collections.abc import Callable

import uvloop
from aiohttp import web

from shared.logging import configure_logging


def serve(
    service: str,
    build: Callable[[], web.Application],
    *,
    host: str,
    port: int,
    log_level: str,
    shutdown_timeout_s: float,
    reuse_port: bool = False,
) -> None:
    """JSON logs first (building the app may log), then uvloop, no access log."""
    configure_logging(service, log_level)
    uvloop.install()
    web.run_app(
        build(),
        host=host,
        port=port,
        access_log=None,
        print=None,
        reuse_port=reuse_port,
        shutdown_timeout=shutdown_timeout_s,
    )
