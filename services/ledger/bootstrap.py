"""Settings -> adapters -> the ledger worker and its health/metrics application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.consumer import Consumer
from services.ledger.handler import MessageHandler
from shared.metrics import http_metrics_middleware
from shared.settings import Settings
from shared.sqs import SQSClient, queue_url, sqs_client
from shared.stores import MongoDoc, mongo_client
from shared.web import error_middleware, healthz, json_response, metrics_handler

READINESS = web.AppKey("readiness", dict)


def build_app(settings: Settings) -> web.Application:
    """The worker runs inside the health app's lifecycle, so one process serves both."""
    app = web.Application(middlewares=[http_metrics_middleware("ledger"), error_middleware])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        mongo = mongo_client(settings)
        store = LedgerStore(mongo[settings.mongo_db])
        await store.ensure_indexes()
        stop = asyncio.Event()
        async with sqs_client(settings) as sqs:
            url = await queue_url(sqs, settings.queue_name)
            dlq_url = await queue_url(sqs, settings.dlq_name)
            app[READINESS] = {"mongo": mongo, "sqs": sqs, "queue_url": url}
            consumer = Consumer(
                sqs,
                url,
                dlq_url,
                MessageHandler(store),
                receivers=settings.ledger_receivers,
                wait_time_s=settings.ledger_wait_time_s,
                visibility_timeout_s=settings.visibility_timeout_s,
            )
            worker = asyncio.create_task(consumer.run(stop))
            try:
                yield
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await worker
                await mongo.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[READINESS]
    mongo: object = deps["mongo"]
    sqs: SQSClient = deps["sqs"]
    checks = {}
    for name, probe in (
        ("mongo", mongo.admin.command("ping")),  # type: ignore[attr-defined]
        ("sqs", sqs.get_queue_attributes(QueueUrl=deps["queue_url"], AttributeNames=["QueueArn"])),
    ):
        try:
            await asyncio.wait_for(probe, timeout=2)
            checks[name] = True
        except Exception:
            checks[name] = False
    ready = all(checks.values())
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


__all__ = ["MongoDoc", "build_app"]
