"""Three ledger workers and two gateways (each with its relay) under load, with kills.

The books must come out exact: every balance and usage counter MongoDB holds equals
the live one in Redis, and nothing reaches the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import aiohttp

from shared.accounting.accounts import AccountStore
from shared.accounting.bank import TokenBank
from shared.keys import Keys
from shared.stores import mongo_client, redis_client
from tests.stack import PARIS, ServiceStack, StackFactory, wait_for

ACCOUNTS = 1000
CHARGES_PER_ACCOUNT = 20
HTTP_MEMES = 300  # per gateway
STEP = 500
BALANCE = 100


async def books(stack: ServiceStack, accounts: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per account, Redis' live (epoch, seq, balance, calls, spent) and MongoDB's."""
    keys = Keys(stack.settings.shards)
    redis = redis_client(stack.settings)
    client = mongo_client(stack.settings)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hmget(keys.account(account), ["epoch", "seq", "balance", "calls", "spent"])
            answers = await pipe.execute()
        live = {
            a: tuple(int(v or 0) for v in row) for a, row in zip(accounts, answers, strict=True)
        }
        stored = {
            d["_id"]: (
                d["epoch"],
                d["seq"],
                d["balance"],
                d["usage"]["calls"],
                d["usage"]["tokens_spent"],
            )
            async for d in client[stack.settings.mongo_db]["accounts"].find({})
        }
    finally:
        await redis.aclose()
        await client.close()
    return live, stored


async def test_three_ledgers_two_gateways_with_kills_keep_the_books_exact(
    make_stack: StackFactory,
) -> None:
    # Visibility long enough that a busy machine's slow heartbeat never lets a message
    # another worker holds be received again; a killed worker's messages return after it.
    stack = await make_stack(visibility_timeout_s=10)
    accounts = [f"rep-{n:04d}" for n in range(ACCOUNTS)]
    mongo = mongo_client(stack.settings)
    store = AccountStore(mongo[stack.settings.mongo_db])
    for account in accounts:
        await store.create(account, BALANCE)
    await stack.start_replica("ledger", "ledger-2")
    await stack.start_replica("ledger", "ledger-3")
    gateways = [stack.gateway, await stack.start_replica("gateway", "gateway-2")]

    # Most charges go through the gateway's own charge script straight from here, so
    # the run measures the pipeline behind Redis rather than meme rendering; a share
    # goes through both gateways over HTTP.
    bank = TokenBank(redis_client(stack.settings), Keys(stack.settings.shards), store, 3600)
    for account in accounts:  # hydrated before the load
        await bank.hydrate(account)
    charges = [a for _ in range(CHARGES_PER_ACCOUNT) for a in accounts]
    statuses: Counter[int] = Counter()
    charged = 0

    async def delivered(account: str) -> None:
        """A charge whose meme was delivered: charged, then confirmed."""
        _, charge = await bank.charge(account, 1, None, "meme:text", "load", 60)
        assert charge is not None
        await bank.confirm(charge)

    async def charge_in_steps() -> None:
        nonlocal charged
        for first in range(0, len(charges), STEP):
            step = charges[first : first + STEP]
            await asyncio.gather(*(delivered(a) for a in step))
            charged += len(step)
            await asyncio.sleep(0.1)

    async def memes_over_http(http: aiohttp.ClientSession, gateway: str) -> None:
        for account in accounts[:HTTP_MEMES]:
            with contextlib.suppress(aiohttp.ClientError):  # its gateway may be killed
                async with http.get(
                    f"{gateway}/memes", params=PARIS, headers=stack.auth(account)
                ) as r:
                    statuses[r.status] += 1

    async def kill_mid_run() -> None:
        async def a_third_charged() -> bool:
            return charged >= len(charges) // 3

        await wait_for(a_third_charged, 120, "a third of the load")
        stack.kill("ledger-2")
        stack.kill("gateway-2")

    started = time.monotonic()
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(
                charge_in_steps(),
                kill_mid_run(),
                *(memes_over_http(http, gateway) for gateway in gateways),
            )
    finally:
        await bank.redis.aclose()
        await mongo.close()
    load_s = time.monotonic() - started

    async def drained() -> bool:
        live, stored = await books(stack, accounts)
        return all(live[a][:2] == stored[a][:2] for a in accounts)

    await wait_for(drained, 120, "the ledgers to apply every event")
    drain_s = time.monotonic() - started - load_s
    live, stored = await books(stack, accounts)
    events = sum(row[1] for row in live.values())
    print(
        f"\n{events} events ({dict(statuses)} over HTTP) charged in {load_s:.1f} s; "
        f"drained {drain_s:.1f} s after the load"
    )
    assert events >= CHARGES_PER_ACCOUNT * ACCOUNTS
    assert {a: live[a][2:] for a in accounts} == {a: stored[a][2:] for a in accounts}
    assert await stack.dead_letters() == 0
