"""HTTP routes of the meme service; the gateway is their only client."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from aiohttp import web

from services.meme.deps import DEPS
from services.meme.domain.request import MemeRequest, parse_request
from services.meme.render import render_png
from shared.contract import MAX_MEME_BATCH
from shared.errors import ApiError
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


async def generate_batch(request: web.Request) -> web.Response:
    """Text memes as JSON for up to MAX_MEME_BATCH requests in one call: the gateway
    gathers the memes its requests ask for in one step of its loop, so both sides pay
    one HTTP exchange for all of them. Each item is answered on its own: a meme, or
    the error its single call would have had."""
    body = await read_json(request)
    items = body.get("requests")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_MEME_BATCH:
        raise ApiError("invalid_params", f"requests must be a list of 1 to {MAX_MEME_BATCH}")
    results: list[dict[str, object]] = []
    valid: list[tuple[int, MemeRequest]] = []
    for item in items:
        try:
            meme_request = parse_request(item if isinstance(item, dict) else {})
            if meme_request.kind != "text" or meme_request.format != "json":
                raise ApiError("invalid_params", "a batch holds text memes as JSON only")
        except ApiError as error:
            results.append({"status": error.status, **error.body()})
            continue
        valid.append((len(results), meme_request))
        results.append({})
    memes = await request.app[DEPS].memes.make_texts([r for _, r in valid])
    for (at, _), meme in zip(valid, memes, strict=True):
        results[at] = {"status": 200, "meme": meme.to_json()}
    return json_response({"results": results})


async def readyz(request: web.Request) -> web.Response:
    memes = request.app[DEPS].memes
    return json_response({"status": "ready", "ai_available": memes.ai_available, "batch": True})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/generate", generate)
    app.router.add_post("/v1/generate-batch", generate_batch)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())
