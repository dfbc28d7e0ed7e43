"""Dead letters: the index, one message decoded, and redrive or purge with a journal."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.ledger.console.deps import console, operator
from services.ledger.console.letters import standings
from services.ledger.usecases.dead_letters import decoded_events, operator_walk
from shared.errors import ApiError
from shared.sqs import queue_depth
from shared.stores import MongoDoc
from shared.validation import ACCOUNT_ID, journal_reason

routes = web.RouteTableDef()
ALL = "all"
ACTION = "{target}/{action:redrive|purge}"


@routes.get("/dead-letters", name="dead-letters")
async def listing(request: web.Request) -> web.Response:
    """Every indexed dead letter, or those holding an account's events, or with a reason."""
    c = console(request)
    account = request.query.get("account", "").strip()
    reason = request.query.get("reason", "").strip()
    if account and not ACCOUNT_ID.fullmatch(account):
        raise ApiError("invalid_params", "an account id is 1-64 of A-Z a-z 0-9 _ . : @ | -")
    indexed, depth, journal = await asyncio.gather(
        c.store.dead_letter_index(), queue_depth(c.sqs, c.dlq_url), c.journal.recent()
    )
    letters = [
        letter
        for letter in indexed
        if (not account or account in letter.get("accounts", []))
        and (not reason or reason.lower() in (letter.get("first_reason") or "unknown").lower())
    ]
    failures = await asyncio.gather(*(c.store.failure(letter["_id"]) for letter in letters))
    rows = [
        with_failure(letter, failure) for letter, failure in zip(letters, failures, strict=True)
    ]
    return aiohttp_jinja2.render_template(
        "dead_letters.html",
        request,
        {
            "letters": rows,
            "indexed": len(indexed),
            "depth": depth,
            "journal": journal,
            "account": account,
            "reason": reason,
        },
    )


def with_failure(letter: MongoDoc, failure: MongoDoc | None) -> dict[str, Any]:
    """The index entry with the first and last time the ledger saw the message fail."""
    failure = failure or {}
    return {
        **letter,
        "first_seen": failure.get("first_seen", letter["dead_since"]),
        "last_seen": failure.get("last_seen", letter["dead_since"]),
    }


async def known_letter(request: web.Request, message_id: str) -> MongoDoc:
    letter = await console(request).store.dead_letter(message_id)
    if letter is None:
        raise ApiError("not_found", f"no message {message_id} in the dead-letter queue")
    return letter


@routes.get("/dead-letters/{message_id}", name="dead-letter")
async def show(request: web.Request) -> web.Response:
    c = console(request)
    letter = await known_letter(request, request.match_info["message_id"])
    events = decoded_events(letter)
    accounts = sorted({e.account for e in events or []})
    positions, failure = await asyncio.gather(
        c.store.positions(accounts), c.store.failure(letter["_id"])
    )
    return aiohttp_jinja2.render_template(
        "dead_letter.html",
        request,
        {
            "letter": with_failure(letter, failure),
            "events": events,
            "standings": standings(events or [], positions),
        },
    )


@routes.get(f"/dead-letters/{ACTION}", name="dead-letter-confirm")
async def confirm(request: web.Request) -> web.Response:
    action, target = request.match_info["action"], request.match_info["target"]
    if target == ALL:
        letters = await console(request).store.dead_letter_index()
    else:
        letters = [await known_letter(request, target)]
    return aiohttp_jinja2.render_template(
        "confirm.html", request, {"action": action, "target": target, "letters": letters}
    )


@routes.post(f"/dead-letters/{ACTION}", name="dead-letter-act")
async def act(request: web.Request) -> web.Response:
    c = console(request)
    action, target = request.match_info["action"], request.match_info["target"]
    if target != ALL:
        await known_letter(request, target)
    reason = journal_reason((await request.post()).get("reason"))
    walk = operator_walk(c.sqs, c.dlq_url, c.db, c.bank)
    chosen = None if target == ALL else {target}
    result = await (walk.redrive(chosen) if action == "redrive" else walk.purge(chosen))
    by = operator(request).account
    await c.journal.record(by, action, target, reason, {"done": result.done, "left": result.left})
    return aiohttp_jinja2.render_template(
        "result.html", request, {"action": action, "target": target, "walk": result}
    )
