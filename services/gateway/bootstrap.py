"""Settings -> adapters -> the gateway application, with their lifecycles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from services.gateway.adapters.meme_client import MemeClient
from services.gateway.adapters.relay import Relay
from services.gateway.app import create_app
from services.gateway.deps import DEPS, Gateway
from services.gateway.drain import Drain
from services.gateway.sweeper import Sweeper
from services.gateway.usecases.slices import SliceBank
from shared.accounting.bank import TokenBank
from shared.accounting.credits import CreditLog
from shared.accounting.regions import Broker
from shared.accounting.slices import GrantPolicy
from shared.auth import Authenticator
from shared.settings import Settings
from shared.sqs import QueueAddress, SQSClient, sqs_client
from shared.stores import mongo_client, redis_client
from shared.web import Readiness, serve_readiness


def build_app(settings: Settings, *, relay: bool = True) -> web.Application:
    app = create_app(settings.max_body_bytes, settings.body_timeout_s)
    drain = Drain(settings.gateway_drain_s)

    async def begin_drain(_: web.Application) -> None:
        drain.begin()

    app.on_shutdown.append(begin_drain)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        redis = redis_client(settings)
        mongo = mongo_client(settings)
        memes = MemeClient(settings.meme_url, settings.meme_timeout_s, settings.meme_ai_timeout_s)
        await memes.start()
        stop = asyncio.Event()
        async with sqs_client(settings) as sqs:
            queue = QueueAddress(sqs, settings.queue_name)
            auth = Authenticator(settings)
            bank = TokenBank.for_settings(settings, redis, mongo[settings.mongo_db])
            credits = CreditLog(mongo[settings.mongo_db])
            slices = None
            if settings.region:
                policy = GrantPolicy(idle_return_s=settings.slice_idle_return_s)
                broker = Broker(mongo[settings.mongo_db], settings.region, policy)
                slices = SliceBank(bank, broker, credits, settings.slice_wait_s)
            app[DEPS] = Gateway(
                settings=settings,
                auth=auth,
                bank=bank,
                charges=slices or bank,
                slices=slices,
                accounts=bank.accounts,
                credits=credits,
                memes=memes,
                redis=redis,
                drain=drain,
            )
            await memes.ready()
            tasks = [asyncio.create_task(memes.watch_readiness(stop))]
            if slices:
                tasks.append(asyncio.create_task(slices.run(stop)))
            flags = {"meme": lambda: memes.up, **await auth.start(stop)}
            readiness = Readiness(
                {
                    "redis": redis.ping,
                    "sqs": lambda: queue_reachable(sqs, queue),
                },
                flags,
                extra=lambda: {"ai_available": memes.ai_available},
            )
            tasks.append(await serve_readiness(app, readiness, stop))
            if relay:
                relayer = Relay(
                    redis,
                    sqs,
                    queue,
                    bank.keys,
                    f"{socket.gethostname()}:{os.getpid()}",
                    batch_size=settings.relay_batch_size,
                    lease_ttl_ms=settings.relay_lease_ttl_ms,
                    linger_ms=settings.relay_linger_ms,
                    idle_sleep_ms=settings.relay_idle_sleep_ms,
                )
                sweeper = Sweeper(bank, lambda: relayer.held, settings.refund_durable_within_s)
                tasks += [
                    asyncio.create_task(relayer.run(stop)),
                    asyncio.create_task(sweeper.run(stop)),
                ]
            try:
                yield
            finally:
                await drain.refund_leftovers(bank)
                if slices:
                    await slices.close()
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.gather(*tasks)
                await memes.close()
                await auth.close()
                await redis.aclose()
                await mongo.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def queue_reachable(sqs: SQSClient, queue: QueueAddress) -> None:
    await sqs.get_queue_attributes(QueueUrl=await queue.url(), AttributeNames=["QueueArn"])
