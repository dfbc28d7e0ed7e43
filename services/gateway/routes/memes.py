"""The metered meme endpoints: authenticate, validate, charge, generate, answer.

A charge stays pending until its answer is written (then it is confirmed) or its meme
fails (then it is refunded before the error is answered). A charge whose gateway died
in between is refunded by the sweeper, so a client is never charged for a meme it did
not get.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from services.gateway.adapters.meme_client import Meme
from services.gateway.deps import DEPS
from services.gateway.domain.params import parse_meme_request
from services.gateway.routes.context import REQUEST_ID
from shared.accounting.bank import (
    Charge,
    NotHydrated,
    Status,
    TokenBank,
    UnknownAccount,
)
from shared.accounting.prices import choose_kind, price_of, rate_limit_for
from shared.errors import ApiError
from shared.metrics import METRIC_KIND
from shared.web import json_response, read_json

TOKENS_CHARGED = Counter("maas_tokens_charged_total", "Tokens charged for memes", ["kind"])
TOKENS_REFUNDED = Counter("maas_tokens_refunded_total", "Tokens refunded after failures", ["kind"])
REFUNDS = Counter(
    "maas_refunds_total",
    "Refunds of failed memes by outcome: applied, dropped (the debit was lost with Redis's "
    "data), nothing_to_refund (refunded before), deferred (left to the sweeper)",
    ["kind", "outcome"],
)
CONFIRM_FAILURES = Counter(
    "maas_confirm_failures_total", "Delivered memes whose charge could not be confirmed"
)

log = logging.getLogger(__name__)


async def get_meme(request: web.Request) -> web.StreamResponse:
    return await serve_meme(request, dict(request.query))


async def post_meme(request: web.Request) -> web.StreamResponse:
    return await serve_meme(request, await read_json(request))


async def serve_meme(request: web.Request, values: dict[str, Any]) -> web.StreamResponse:
    deps = request.app[DEPS]
    principal = await deps.auth.authenticate(request.headers.get("Authorization"))
    params = parse_meme_request(values)
    kind = choose_kind(params.kind, principal.roles, deps.memes.ai_available)
    price = price_of(kind, deps.settings)
    request[METRIC_KIND] = kind  # AI memes have their own latency objective
    request_id = request[REQUEST_ID]
    try:
        charged, charge = await deps.bank.charge(
            principal.account,
            price,
            rate_limit_for(principal.roles, deps.settings),
            f"meme:{kind}",
            request_id,
            deps.settings.refundable_after_s(kind),
        )
    except UnknownAccount:
        raise ApiError("unknown_account", "no account for this token") from None
    except NotHydrated:
        raise ApiError(
            "upstream_unavailable",
            "balances are being restored; retry (nothing was charged)",
            headers={"Retry-After": "1"},
        ) from None
    if charged.status == Status.RATE_LIMITED:
        retry_after = max(1, math.ceil(charged.retry_after_ms / 1000))
        raise ApiError(
            "rate_limited",
            f"too many requests; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
    if charged.status == Status.INSUFFICIENT or charge is None:
        raise ApiError(
            "insufficient_tokens",
            f"a {kind} meme costs {price} tokens; the balance is {charged.balance}",
            headers={"X-Tokens-Remaining": str(charged.balance)},
            balance=charged.balance,
            price=price,
        )
    TOKENS_CHARGED.labels(kind).inc(price)
    with deps.drain.holding(charge):
        try:
            meme = await deps.drain.unless_closed(
                deps.memes.generate(
                    query=params.query,
                    lat=params.lat,
                    lon=params.lon,
                    kind=kind,
                    fmt=params.format,
                    request_id=request_id,
                )
            )
            response = render(meme, params.query, kind, price, charged.balance, request_id)
            await response.prepare(request)
            await response.write_eof()
        except BaseException as failure:  # an upstream error, a cancelled handler, a lost client
            await asyncio.shield(refund(deps.bank, charge, kind, failure))
            raise
        await confirm(deps.bank, charge)
    return response


async def refund(bank: TokenBank, charge: Charge, kind: str, failure: BaseException) -> None:
    """Give the charge back; a refund that fails stays pending for the sweeper."""
    try:
        refunded = await bank.refund(charge)
    except Exception:
        log.warning("refund failed; the sweeper will refund it", exc_info=True)
        REFUNDS.labels(kind, "deferred").inc()
        if isinstance(failure, ApiError):
            failure.details["refund"] = "pending"
        return
    REFUNDS.labels(kind, refunded.status.name.lower()).inc()
    if refunded.status == Status.APPLIED:
        TOKENS_REFUNDED.labels(kind).inc(charge.price)
    if isinstance(failure, ApiError):
        failure.headers["X-Tokens-Remaining"] = str(refunded.balance)
        failure.details["tokens_remaining"] = refunded.balance


async def confirm(bank: TokenBank, charge: Charge) -> None:
    """The answer is written: clear the pending record.

    If this fails, the record stays and the sweeper refunds a meme that was delivered:
    the client gets it free, which is our loss, never the client's (counted).
    """
    try:
        await bank.confirm(charge)
    except Exception:
        log.warning("confirming a delivered meme failed; it will be refunded", exc_info=True)
        CONFIRM_FAILURES.inc()


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
