"""Health, readiness and the OpenAPI document."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from services.gateway.deps import DEPS
from shared.web import readiness

OPENAPI = (resources.files("services.gateway") / "openapi.json").read_bytes()


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]

    async def meme() -> None:
        if not await deps.memes.ready():
            raise ConnectionError("meme service not ready")

    return await readiness(
        {
            "redis": deps.redis.ping(),
            "sqs": deps.sqs.get_queue_attributes(
                QueueUrl=deps.queue_url, AttributeNames=["QueueArn"]
            ),
            "meme": meme(),
        },
        ai_available=deps.memes.ai_available,
    )


async def openapi(_: web.Request) -> web.Response:
    return web.Response(body=OPENAPI, content_type="application/json")
