"""The caller's balance alone, as the reference implementation's clients ask for it."""

from __future__ import annotations

from aiohttp import web

from services.gateway.adapters.tokens import UnknownAccount
from services.gateway.deps import DEPS
from shared.errors import ApiError
from shared.web import json_response


async def get_own_tokens(request: web.Request) -> web.Response:
    """`{"tokens": N}` from Redis, with the errors of `/v1/account`."""
    deps = request.app[DEPS]
    principal = await deps.auth.authenticate(request.headers.get("Authorization"))
    try:
        live = await deps.bank.live(principal.account)
    except UnknownAccount:
        raise ApiError("unknown_account", "no account for this token") from None
    return json_response({"tokens": live.balance})
