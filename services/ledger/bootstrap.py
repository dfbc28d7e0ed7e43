"""Settings -> adapters -> the ledger worker and its health/metrics application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.console.app import build_console
from services.ledger.console.deps import CONSOLE, Console
from services.ledger.console.gate import Gate
from services.ledger.console.journal import OperatorJournal
from services.ledger.consumer import Consumer
from services.ledger.pipeline import Sampler, Samples
from services.ledger.usecases.apply_messages import MessageHandler
from services.ledger.usecases.books import export_drift, reconcile_and_keep
from services.ledger.usecases.dead_letters import collect_periodically, operator_walk
from services.ledger.usecases.reconcile import Reconciler
from shared import tracing
from shared.accounting.bank import TokenBank
from shared.auth import Authenticator
from shared.keys import Keys
from shared.metrics import http_metrics_middleware
from shared.settings import Settings
from shared.sqs import queue_url, sqs_client
from shared.stores import Redis, mongo_client, redis_client, while_leased
from shared.web import (
    Readiness,
    error_middleware,
    healthz,
    metrics_handler,
    readyz,
    serve_readiness,
)

log = logging.getLogger(__name__)


def build_app(settings: Settings) -> web.Application:
    """The worker runs inside the health app's lifecycle, so one process serves both."""
    app = web.Application(
        middlewares=[*tracing.middlewares(), http_metrics_middleware("ledger"), error_middleware]
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())
    app.router.add_get("/console", to_console)
    app.add_subapp("/console/", build_console())
    app.cleanup_ctx.append(lambda app: run_worker(app, settings))
    return app


async def run_worker(app: web.Application, settings: Settings) -> AsyncIterator[None]:
    mongo, redis = mongo_client(settings), redis_client(settings)
    db = mongo[settings.mongo_db]
    store = LedgerStore(db)
    bank = TokenBank.for_settings(settings, redis, db)
    keys = bank.keys
    stop = asyncio.Event()
    auth = Authenticator(settings)
    async with sqs_client(settings) as sqs:
        url, dlq_url = (
            await queue_url(sqs, settings.queue_name),
            await queue_url(sqs, settings.dlq_name),
        )
        reconciler = Reconciler(redis, db, sqs, url, keys, settings.region)
        app[CONSOLE] = Console(
            settings=settings,
            gate=Gate(auth, redis, secure_cookie=settings.env == "prod"),
            redis=redis,
            db=db,
            sqs=sqs,
            dlq_url=dlq_url,
            store=store,
            journal=OperatorJournal(db),
            reconciler=reconciler,
            bank=bank,
            samples=Samples(redis),
        )
        consumer = Consumer(
            sqs,
            url,
            dlq_url,
            MessageHandler(store, settings.max_receive_count, bank),
            receivers=settings.ledger_receivers,
            wait_time_s=settings.ledger_wait_time_s,
            visibility_timeout_s=settings.visibility_timeout_s,
            summary_every_s=settings.ledger_summary_every_s,
            stuck_after_s=settings.ledger_stuck_after_s,
        )
        tasks = [
            asyncio.create_task(consumer.run(stop)),
            asyncio.create_task(
                collect_periodically(operator_walk(sqs, dlq_url, db, bank), redis, stop)
            ),
        ]
        readiness = Readiness(
            {
                "mongo": lambda: mongo.admin.command("ping"),
                "sqs": lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]),
            },
            await auth.start(stop),
        )
        tasks.append(await serve_readiness(app, readiness, stop))
        if settings.pipeline_sample_interval_s:
            sampler = Sampler(redis, sqs, url, dlq_url, keys, settings.pipeline_sample_interval_s)
            tasks.append(asyncio.create_task(sampler.run(stop)))
        if settings.reconcile_interval_s:
            tasks.append(
                asyncio.create_task(reconcile_periodically(reconciler, redis, settings, stop))
            )
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks)
            await auth.close()
            await mongo.close()
            await redis.aclose()


async def reconcile_periodically(
    reconciler: Reconciler, redis: Redis, settings: Settings, stop: asyncio.Event
) -> None:
    """Keep the drift gauges fresh so an alert fires without anyone running the CLI.

    One replica at a time holds the lease and reconciles; the lease outlives a few
    intervals, so another replica takes over when its holder is gone.
    """

    async def reconcile() -> None:
        report = await reconcile_and_keep(
            reconciler, redis, settings.reconcile_page_size, "periodic reconciliation"
        )
        export_drift(report)

    await while_leased(
        redis,
        Keys.reconcile_lease(),
        settings.reconcile_interval_s,
        reconcile,
        stop,
        "periodic reconciliation failed",
    )


async def to_console(_: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/console/")
