"""Books: the last reconciliation, an account's ledger history, and settling it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from services.ledger.console.deps import console, operator
from services.ledger.usecases.books import last_books, reconcile_and_keep
from services.ledger.usecases.settle import settle
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import AccountBusy, UnknownAccount
from shared.accounting.credits import CreditLog
from shared.errors import ApiError
from shared.validation import ACCOUNT_ID, journal_reason

routes = web.RouteTableDef()
HISTORY_LIMIT = 50
SEARCH_PAGE = 50
CREDITS_SHOWN = 50
TIME = "%Y-%m-%d %H:%M:%S UTC"


@routes.get("/books", name="books")
async def books(request: web.Request) -> web.Response:
    c = console(request)
    report = await last_books(c.redis)
    at = datetime.fromtimestamp(report["at"], UTC).strftime(TIME) if report else ""
    return aiohttp_jinja2.render_template(
        "books.html",
        request,
        {"report": report, "at": at, "interval": c.settings.reconcile_interval_s},
    )


@routes.get("/books/search", name="search")
async def search(request: web.Request) -> web.Response:
    """Accounts by id or id prefix, a page at a time; an exact id opens its page."""
    c = console(request)
    prefix, after = request.query.get("q", "").strip(), request.query.get("after", "")
    for value in (prefix, after):
        if value and not ACCOUNT_ID.fullmatch(value):
            raise ApiError("invalid_params", "an account id is 1-64 of A-Z a-z 0-9 _ . : @ | -")
    found = await AccountStore(c.db).starting_with(prefix, after, SEARCH_PAGE + 1)
    if not after and len(found) == 1 and found[0]["_id"] == prefix:
        raise web.HTTPSeeOther(f"/console/books/{quote(prefix, safe='')}")
    page, more = found[:SEARCH_PAGE], len(found) > SEARCH_PAGE
    return aiohttp_jinja2.render_template(
        "search.html",
        request,
        {"q": prefix, "accounts": page, "next": page[-1]["_id"] if more else None},
    )


@routes.post("/books/reconcile", name="reconcile")
async def reconcile(request: web.Request) -> web.Response:
    c = console(request)
    await reconcile_and_keep(
        c.reconciler, c.redis, c.settings.reconcile_page_size, operator(request).account
    )
    raise web.HTTPSeeOther("/console/books")


def account_of(request: web.Request) -> str:
    account = request.match_info["account"]
    if not ACCOUNT_ID.fullmatch(account):
        raise ApiError("not_found", "no such account")
    return account


@routes.get("/books/{account}", name="account")
async def account(request: web.Request) -> web.Response:
    """Balances and positions, the journal a page at a time backwards, credits with their
    idempotency keys, the dead letters holding its events, and the settle form."""
    c, name = console(request), account_of(request)
    before = request.query.get("before", "")
    report = await c.reconciler.run(name)
    if not report.rows:
        raise ApiError("not_found", f"no account {name} in MongoDB")
    history, credits, letters = await asyncio.gather(
        c.store.history(name, HISTORY_LIMIT + 1, before),
        CreditLog(c.db).of_account(name, CREDITS_SHOWN),
        c.store.dead_letter_index(),
    )
    page = history[:HISTORY_LIMIT]
    return aiohttp_jinja2.render_template(
        "account.html",
        request,
        {
            "row": report.rows[0].as_dict(),
            "history": page,
            "older": page[-1]["_id"] if len(history) > HISTORY_LIMIT else None,
            "paged": bool(before),
            "credits": credits,
            "letters": [letter for letter in letters if name in letter.get("accounts", [])],
        },
    )


@routes.post("/books/{account}/settle", name="settle")
async def settle_account(request: web.Request) -> web.Response:
    c, name = console(request), account_of(request)
    form = await request.post()
    reason = journal_reason(form.get("reason"))
    if form.get("confirm") != "yes":
        raise ApiError("invalid_params", "tick the box to confirm the settle")
    by = operator(request).account
    try:
        settled = await settle(c.bank, c.store, name, reason, by)
    except UnknownAccount:
        raise ApiError("not_found", f"no account {name}") from None
    except AccountBusy:
        raise ApiError(
            "account_busy", f"charges kept moving {name}; try again", status=409
        ) from None
    settlement = settled.settlement
    outcome = {
        "balance_before": settlement.before_balance,
        "balance": settlement.balance,
        "adopted": [e.id for e, _ in settled.adopted],
        "voided": {e.id: voided.reason for e, voided in settled.adopted if voided},
    }
    await c.journal.record(by, "settle", name, reason, outcome)
    return aiohttp_jinja2.render_template(
        "settled.html",
        request,
        {
            "account": name,
            "settlement": settlement,
            "applied": settled.mongo_applied,
            "adopted": settled.adopted,
        },
    )
