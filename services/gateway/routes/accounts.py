"""Accounts: the caller's own view, and the admin API the billing team calls."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from services.gateway.deps import DEPS, Gateway
from services.gateway.routes.tokens import caller_live
from services.gateway.usecases.credit import credit, credit_in_region
from shared.accounting.accounts import AccountExists, empty_usage
from shared.accounting.bank import UnknownAccount
from shared.auth import Principal
from shared.claims import ADMIN_ROLE
from shared.errors import ApiError
from shared.validation import account_id, credit_reason, token_amount
from shared.web import json_response, read_json

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


async def admin(request: web.Request) -> Principal:
    principal = await request.app[DEPS].auth.authenticate(request.headers.get("Authorization"))
    if ADMIN_ROLE not in principal.roles:
        raise ApiError("forbidden", "this route needs the 'admin' role")
    return principal


async def live_tokens(deps: Gateway, account: str, stored: int) -> int:
    """Redis holds the live balance; before hydration MongoDB's is the live one. With
    a region, the account's tokens in every region (`SliceBank.live`)."""
    if deps.slices:
        return (await deps.slices.live(account)).balance
    balance = await deps.bank.balance(account)
    return stored if balance is None else balance


def usage_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {**empty_usage(), **doc.get("usage", {})}


async def get_own_account(request: web.Request) -> web.Response:
    """Served from Redis alone: the live balance and usage, one round trip."""
    principal, live = await caller_live(request)
    return json_response(
        {
            "id": principal.account,
            "tokens": live.balance,
            "roles": sorted(principal.roles),
            "usage": {"calls": live.calls, "tokens_spent": live.tokens_spent},
        }
    )


async def create_account(request: web.Request) -> web.Response:
    await admin(request)
    deps = request.app[DEPS]
    body = await read_json(request)
    account = account_id(body.get("id"))
    tokens = token_amount(body.get("tokens"), "tokens", 0)
    try:
        await deps.accounts.create(account, tokens)
    except AccountExists:
        raise ApiError("account_exists", f"account {account!r} already exists") from None
    if not deps.slices:  # with a region, the tokens stay in the account's pool
        await deps.bank.hydrate(account)
    return json_response({"id": account, "tokens": tokens}, status=201)


async def get_account(request: web.Request) -> web.Response:
    await admin(request)
    deps = request.app[DEPS]
    account = account_id(request.match_info["account"])
    doc = await deps.accounts.get(account)
    if doc is None:
        raise ApiError("not_found", f"no account {account!r}")
    view = {
        "id": account,
        "tokens": await live_tokens(deps, account, doc["balance"]),
        "ledger": {"balance": doc["balance"], "epoch": doc["epoch"], "seq": doc["seq"]},
        "usage": usage_of(doc),
    }
    if deps.slices:  # the ledger's balance above is then the account's pool
        view["regions"] = await deps.slices.by_region(account)
    return json_response(view)


async def credit_account(request: web.Request) -> web.Response:
    """Credit purchased tokens; the billing team may retry blindly with the same key."""
    await admin(request)
    deps = request.app[DEPS]
    account = account_id(request.match_info["account"])
    key = request.headers.get("Idempotency-Key", "")
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(
            "invalid_params",
            "Idempotency-Key header: required, 1-128 characters of letters, digits and . _ : -",
            field="Idempotency-Key",
        )
    body = await read_json(request)
    amount = token_amount(body.get("amount"), "amount", 1)
    reason = credit_reason(body.get("reason", "purchase"))
    if deps.slices is None:
        event_id, tokens = await credit(deps.bank, deps.credits, account, key, amount, reason)
        return json_response({"event_id": event_id, "tokens": tokens}, status=202)
    # With a region, the tokens land in the slice of the region that took the key first,
    # in its book: that region's own numbering, as the ledger applies a region's events.
    try:
        book = await deps.slices.opened(account)
    except UnknownAccount:
        raise ApiError("not_found", f"no account {account!r}") from None
    owner = await deps.slices.broker.key_owner(account, key)
    event_id = await credit_in_region(deps.bank, deps.credits, owner, book, key, amount, reason)
    tokens = (await deps.slices.live(account)).balance
    if owner == deps.slices.broker.region:
        deps.slices.credited(account, amount)
    return json_response({"event_id": event_id, "tokens": tokens}, status=202)
