"""The caller's balance alone, as the reference implementation's clients ask for it."""

from __future__ import annotations

from aiohttp import web

from services.gateway.deps import DEPS
from shared.accounting.bank import LiveAccount, UnknownAccount
from shared.auth import Principal
from shared.errors import ApiError
from shared.web import json_response


async def caller_live(request: web.Request) -> tuple[Principal, LiveAccount]:
    """The caller and its live account, from Redis alone (one round trip)."""
    deps = request.app[DEPS]
    principal = await deps.auth.authenticate(request.headers.get("Authorization"))
    try:
        if deps.slices:
            return principal, await deps.slices.live(principal.account)
        return principal, await deps.bank.live(principal.account)
    except UnknownAccount:
        raise ApiError("unknown_account", "no account for this token") from None


async def get_own_tokens(request: web.Request) -> web.Response:
    """`{"tokens": N}`, with the errors of `/v1/account`."""
    _, live = await caller_live(request)
    return json_response({"tokens": live.balance})
