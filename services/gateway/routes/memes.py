"""The metered meme endpoints: HTTP in (token, query or body), HTTP out (JSON or PNG).

What happens between, charging and refunds included, is `usecases/order_meme.py`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.gateway.adapters.meme_client import Meme
from services.gateway.deps import DEPS
from services.gateway.domain.params import parse_meme_request
from services.gateway.routes.context import REQUEST_ID
from services.gateway.usecases.order_meme import order_meme
from shared.accounting.prices import choose_kind
from shared.metrics import METRIC_KIND
from shared.web import json_response, read_json


async def get_meme(request: web.Request) -> web.StreamResponse:
    return await serve_meme(request, dict(request.query))


async def post_meme(request: web.Request) -> web.StreamResponse:
    return await serve_meme(request, await read_json(request))


async def serve_meme(request: web.Request, values: dict[str, Any]) -> web.StreamResponse:
    deps = request.app[DEPS]
    principal = await deps.auth.authenticate(request.headers.get("Authorization"))
    params = parse_meme_request(values)
    kind = choose_kind(params.kind, principal.roles, deps.memes.ai_available)
    request[METRIC_KIND] = kind  # AI memes have their own latency objective
    request_id = request[REQUEST_ID]
    answered: list[web.Response] = []

    async def deliver(meme: Meme, price: int, remaining: int) -> None:
        response = render(meme, params.query, kind, price, remaining, request_id)
        await response.prepare(request)
        await response.write_eof()
        answered.append(response)

    await order_meme(
        bank=deps.charges,
        memes=deps.memes,
        drain=deps.drain,
        settings=deps.settings,
        principal=principal,
        params=params,
        kind=kind,
        request_id=request_id,
        deliver=deliver,
    )
    return answered[0]


def render(
    meme: Meme, query: str, kind: str, price: int, remaining: int, request_id: str
) -> web.Response:
    headers = {"X-Tokens-Remaining": str(remaining), "X-Tokens-Charged": str(price)}
    if meme.png is not None:
        return web.Response(body=meme.png, content_type="image/png", headers=headers)
    body = meme.body or {}
    return json_response(
        {
            "id": request_id,
            "kind": kind,
            "text": body.get("text"),
            "location": body.get("location"),
            "query": query,
            "tokens_charged": price,
            "tokens_remaining": remaining,
        },
        headers=headers,
    )
