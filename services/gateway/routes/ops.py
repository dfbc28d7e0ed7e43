"""Health, readiness and the OpenAPI document."""

from __future__ import annotations

import asyncio
from importlib import resources

from aiohttp import web

from services.gateway.deps import DEPS, Gateway
from shared.web import json_response

OPENAPI = (resources.files("services.gateway") / "openapi.json").read_bytes()


async def _check(name: str, probe: asyncio.Future[object] | object) -> tuple[str, bool]:
    try:
        await asyncio.wait_for(probe, timeout=2)  # type: ignore[arg-type]
    except Exception:
        return name, False
    return name, True


async def dependencies(deps: Gateway) -> dict[str, bool]:
    async def meme() -> None:
        if not await deps.memes.ready():
            raise ConnectionError("meme service not ready")

    checks = await asyncio.gather(
        _check("redis", deps.redis.ping()),
        _check(
            "sqs",
            deps.sqs.get_queue_attributes(QueueUrl=deps.queue_url, AttributeNames=["QueueArn"]),
        ),
        _check("meme", meme()),
    )
    return dict(checks)


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    checks = await dependencies(deps)
    ready = all(checks.values())
    return json_response(
        {
            "status": "ready" if ready else "unavailable",
            "checks": checks,
            "ai_available": deps.memes.ai_available,
        },
        status=200 if ready else 503,
    )


async def openapi(_: web.Request) -> web.Response:
    return web.Response(body=OPENAPI, content_type="application/json")
