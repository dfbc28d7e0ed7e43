"""The gateway killed with SIGKILL under load: every meme a client got is charged once."""

from __future__ import annotations

import aiohttp

from shared.stores import mongo_client
from tests.stack import StackFactory, log_lines, memes_in_flight, wait_for

GENEROUS = {"default": {"rate": 100_000, "burst": 100_000}}


async def test_sigkill_with_1000_requests_in_flight_loses_and_doubles_nothing(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(rate_limits=GENEROUS, relay_linger_ms=200)
    headers = await stack.create_account(http, "busy", 1_000_000)

    async def kill() -> None:
        stack.kill("gateway")

    delivered = await memes_in_flight(stack, headers, 1000, 150, kill, spread_s=3)
    assert 150 <= len(delivered) < 1000

    await stack.start("gateway")
    await stack.drained("busy", timeout_s=60)

    mongo = mongo_client(stack.settings)
    try:
        db = mongo[stack.settings.mongo_db]
        stored = await db["accounts"].find_one({"_id": "busy"})
        debits = [
            doc["request_id"]
            async for doc in db["ledger"].find({"account": "busy", "type": "debit"})
        ]
        refunds = await db["ledger"].count_documents({"account": "busy", "type": "refund"})
    finally:
        await mongo.close()
    assert stored is not None
    live = await stack.redis_account("busy")
    assert stored["balance"] == int(live["balance"])
    assert stored["seq"] == int(live["seq"]) == len(debits)
    assert len(set(debits)) == len(debits)
    missing = set(delivered) - set(debits)
    assert not missing, f"{len(missing)} delivered memes were never charged in MongoDB"
    swept = log_lines(stack.processes["gateway"].log, "swept an overdue charge")
    assert len([s for s in swept if s["outcome"] == "applied"]) == refunds, "a line per sweep"

    async def relayed() -> bool:
        return not await stack.redis_outbox_entries()

    await wait_for(relayed, 10, "the outbox to empty")
