"""The metered meme endpoints: authenticate, validate, charge, generate, answer.

A failed generation is refunded before the error is answered, so a client is never
charged for a meme it did not get.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from services.gateway.adapters.meme_client import Meme
from services.gateway.adapters.tokens import Status, UnknownAccount
from services.gateway.deps import DEPS
from services.gateway.domain.params import parse_meme_request
from services.gateway.domain.pricing import choose_kind, rate_limit_for
from services.gateway.routes.context import REQUEST_ID
from shared.errors import ApiError
from shared.metrics import METRIC_KIND
from shared.web import json_response, read_json

TOKENS_CHARGED = Counter("maas_tokens_charged_total", "Tokens charged for memes", ["kind"])
TOKENS_REFUNDED = Counter("maas_tokens_refunded_total", "Tokens refunded after failures", ["kind"])


async def get_meme(request: web.Request) -> web.StreamResponse:
    return await serve_meme(request, dict(request.query))


async def post_meme(request: web.Request) -> web.StreamResponse:
    return await serve_meme(request, await read_json(request))


async def serve_meme(request: web.Request, values: dict[str, Any]) -> web.StreamResponse:
    deps = request.app[DEPS]
    principal = await deps.auth.authenticate(request.headers.get("Authorization"))
    params = parse_meme_request(values)
    kind = choose_kind(params.kind, principal.roles, deps.memes.ai_available)
    price = deps.settings.price(kind)
    request[METRIC_KIND] = kind  # AI memes have their own latency objective
    request_id = request[REQUEST_ID]
    reason = f"meme:{kind}"
    try:
        charged = await deps.bank.charge(
            principal.account,
            price,
            rate_limit_for(principal.roles, deps.settings),
            reason,
            request_id,
        )
    except UnknownAccount:
        raise ApiError("unknown_account", "no account for this token") from None
    if charged.status == Status.RATE_LIMITED:
        retry_after = max(1, math.ceil(charged.retry_after_ms / 1000))
        raise ApiError(
            "rate_limited",
            f"too many requests; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
    if charged.status == Status.INSUFFICIENT:
        raise ApiError(
            "insufficient_tokens",
            f"a {kind} meme costs {price} tokens; the balance is {charged.balance}",
            headers={"X-Tokens-Remaining": str(charged.balance)},
            balance=charged.balance,
            price=price,
        )
    TOKENS_CHARGED.labels(kind).inc(price)
    try:
        meme = await deps.memes.generate(
            query=params.query,
            lat=params.lat,
            lon=params.lon,
            kind=kind,
            fmt=params.format,
            request_id=request_id,
        )
    except ApiError as error:
        refunded = await deps.bank.refund(principal.account, price, reason, request_id)
        TOKENS_REFUNDED.labels(kind).inc(price)
        error.headers["X-Tokens-Remaining"] = str(refunded.balance)
        error.details["tokens_remaining"] = refunded.balance
        raise
    return render(meme, params.query, kind, price, charged.balance, request_id)


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
