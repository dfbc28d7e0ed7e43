"""HTTP routes of the meme service; the gateway is their only client."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from aiohttp import web

from services.meme.deps import DEPS
from services.meme.domain.request import parse_request
from services.meme.render import render_png
from shared.web import healthz, json_response, metrics_handler, read_json


async def generate(request: web.Request) -> web.Response:
    meme_request = parse_request(await read_json(request))
    deps = request.app[DEPS]
    meme = await deps.memes.make(meme_request)
    if meme_request.format == "json":
        return json_response(meme.to_json())
    settings = deps.settings
    rendered = await asyncio.to_thread(
        render_png,
        meme.text,
        meme.location.name if meme.location else None,
        settings.image_width,
        settings.image_height,
    )
    return web.Response(
        body=rendered.png,
        content_type="image/png",
        headers={"X-Meme-Text": quote(meme.text, safe=""), "X-Meme-Generator": meme.generator},
    )


async def readyz(request: web.Request) -> web.Response:
    return json_response({"status": "ready", "ai_available": request.app[DEPS].memes.ai_available})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/generate", generate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())
