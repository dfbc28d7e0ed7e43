"""Run a service's aiohttp application the same way for all three services."""

from __future__ import annotations

from collections.abc import Callable

import uvloop
from aiohttp import web

from shared.logging import configure_logging
from shared.production import Service
from shared.settings import Settings


def serve(
    service: Service,
    build: Callable[[Settings], web.Application],
    settings: Settings,
    *,
    shutdown_timeout_s: float,
    reuse_port: bool = False,
) -> None:
    """JSON logs first (building the app may log), then uvloop, no access log.

    The service listens on its own `<service>_host` and `<service>_port` settings.
    """
    configure_logging(service, settings.log_level)
    uvloop.install()
    web.run_app(
        build(settings),
        host=getattr(settings, f"{service}_host"),
        port=getattr(settings, f"{service}_port"),
        access_log=None,
        print=None,
        reuse_port=reuse_port,
        shutdown_timeout=shutdown_timeout_s,
    )
