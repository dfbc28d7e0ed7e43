"""Run a service's aiohttp application the same way for all three services.

Each process says when it starts (its version and settings, secrets left out), when it
is ready, when it is asked to stop and when it has stopped: an operator reading a log
after an incident sees every restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import AsyncIterator, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import uvloop
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from shared import tracing
from shared.aio import measure_loop_lag, running
from shared.logging import configure_logging
from shared.production import Service
from shared.settings import Settings
from shared.stalls import spare_the_loop_collections, watching

log = logging.getLogger("maas.lifecycle")
ACCESS_LOG = logging.getLogger("maas.access")

SECRETS = {"jwt_secret", "openai_api_key", "google_api_key", "aws_access_key_id",
           "aws_secret_access_key"}  # fmt: skip


CREDENTIALS = re.compile(r"//[^/@]*@")  # user:password@ in a URL (any number of hosts)


class SampledAccessLog(AbstractAccessLogger):
    """aiohttp's access log (its default fields) as JSON lines, for a sample of requests:
    `rate` of them (MAAS_ACCESS_LOG_SAMPLE; 0, the default, writes none)."""

    rate = 0.0

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if random.random() >= self.rate:
            return
        self.logger.info(
            "access",
            extra={
                "remote": request.remote,
                "request": f"{request.method} {request.path_qs} HTTP/{request.version.major}."
                f"{request.version.minor}",
                "status": response.status,
                "bytes": response.body_length,
                "referer": request.headers.get("Referer"),
                "user_agent": request.headers.get("User-Agent"),
                "duration_ms": round(time * 1000, 2),
            },
        )


def access_log_class(rate: float) -> type[AbstractAccessLogger]:
    return type("SampledAccessLogAt", (SampledAccessLog,), {"rate": rate})


def maas_version() -> str:
    try:
        return version("maas")
    except PackageNotFoundError:
        return "unknown"


def settings_summary(settings: Settings) -> dict[str, Any]:
    """The settings for a start line: secrets left out (named only when set), URLs
    without their credentials."""
    summary: dict[str, Any] = {}
    for name, value in settings.model_dump(mode="json").items():
        if name in SECRETS:
            continue
        credentials = name.endswith("_url") and isinstance(value, str)
        summary[name] = CREDENTIALS.sub("//", value) if credentials else value
    summary["secrets_set"] = sorted(n for n in SECRETS if getattr(settings, n, None))
    return summary


def serve(
    service: Service,
    build: Callable[[Settings], web.Application],
    settings: Settings,
    *,
    shutdown_timeout_s: float,
    reuse_port: bool = False,
) -> None:
    """JSON logs first (building the app may log), then uvloop; the access log only
    when sampled (`access_log_sample`).

    The service listens on its own `<service>_host` and `<service>_port` settings.
    """
    configure_logging(service, settings.log_level)
    traced = tracing.configure(service)
    log.info(
        "starting",
        extra={
            "version": maas_version(),
            "pid": os.getpid(),
            "settings": settings_summary(settings),
            "tracing": traced,
        },
    )
    uvloop.install()
    app = build(settings)
    host, port = getattr(settings, f"{service}_host"), getattr(settings, f"{service}_port")

    async def ready(_: web.Application) -> None:
        spare_the_loop_collections()
        log.info("ready", extra={"host": host, "port": port})

    async def stopping(_: web.Application) -> None:
        log.info("stopping: SIGTERM or SIGINT received", extra={"grace_s": shutdown_timeout_s})

    async def loop_lag(_: web.Application) -> AsyncIterator[None]:
        async with running(measure_loop_lag(asyncio.Event())), watching(settings.stall_report_s):
            yield

    app.cleanup_ctx.append(loop_lag)
    app.on_startup.append(ready)  # after the adapters the application starts (cleanup_ctx)
    app.on_shutdown.insert(0, stopping)
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=ACCESS_LOG if settings.access_log_sample else None,
        access_log_class=access_log_class(settings.access_log_sample),
        print=None,
        reuse_port=reuse_port,
        shutdown_timeout=shutdown_timeout_s,
    )
    tracing.shutdown()
    log.info("stopped")
