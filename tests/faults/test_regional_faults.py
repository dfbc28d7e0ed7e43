"""Two regions under SIGKILLs: their gateways and ledgers killed and started again while
clients spend in both and slices go back and forth (grants, idle returns, hints). Every
funded token is spent exactly once in the end: none lost, none counted twice, and each
region's live slices agree with MongoDB (docs/multi-region.md)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

import aiohttp
import orjson

from shared.accounting.regions import book_of
from tests.integration.test_regions import spend
from tests.stack import ServiceStack, StackFactory, wait_for

ACCOUNTS = 6
FUNDED = 150
KILLS = 8


async def test_kills_in_two_regions_leave_every_token_spent_exactly_once(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    db = f"maas_regional_faults_{uuid.uuid4().hex[:8]}"
    eu, us = await asyncio.gather(
        make_stack(region="eu", mongo_db=db, slice_idle_return_s=1),
        make_stack(region="us", mongo_db=db, slice_idle_return_s=1),
    )
    stacks = {"eu": eu, "us": us}
    accounts = [f"moving-{n}" for n in range(ACCOUNTS)]
    headers = {a: await eu.create_account(http, a, FUNDED) for a in accounts}
    rng = random.Random(18)
    seen: Counter[str] = Counter()  # 200s the clients saw
    unknown = 0  # requests whose answer a killed gateway took with it
    stop = asyncio.Event()

    async def one(account: str, stack: ServiceStack) -> int:
        nonlocal unknown
        try:
            status, _ = await spend(http, stack.gateway, headers[account])
        except aiohttp.ClientError:
            unknown += 1
            return 0
        seen[account] += status == 200
        return status

    async def client(account: str) -> None:
        """Bursts in one region, then the other, with pauses that let slices go idle."""
        while not stop.is_set():
            for stack in (eu, us):
                for _ in range(rng.randint(1, 6)):
                    await one(account, stack)
                await asyncio.sleep(rng.uniform(0, 1.5))

    async def nemesis() -> None:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            region, name = rng.choice(sorted(stacks)), rng.choice(("ledger", "gateway"))
            stacks[region].kill(name)
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            await stacks[region].start(name)
        stop.set()

    await asyncio.gather(nemesis(), *(client(a) for a in accounts))

    async def settled() -> bool:
        """No charge a killed gateway left pending: the sweeper refunded each (a refund
        after the last spend would leave its tokens in a book)."""
        return not any([await s.redis_pending_charges() for s in stacks.values()])

    await wait_for(settled, 60, "the sweepers to settle the charges killed gateways left")

    async def spend_the_rest(account: str) -> None:
        """Alternate regions until both answer 402: the last tokens come back from
        wherever they are (idle returns, hints, a grant a kill left half done)."""
        refused: set[str] = set()
        deadline = asyncio.get_running_loop().time() + 90
        while refused != set(stacks):
            assert asyncio.get_running_loop().time() < deadline, (account, refused)
            for region, stack in stacks.items():
                status = await one(account, stack)
                if status == 402:
                    refused.add(region)
                elif status == 200:
                    refused.clear()
                elif status == 503:
                    await asyncio.sleep(0.2)

    await asyncio.gather(*(spend_the_rest(a) for a in accounts))

    async def left(account: str) -> tuple[int, list[int], int]:
        """The pool's balance, each book's, and the tokens spent over the books."""
        pool = await eu.mongo_account(account)
        books = [await s.mongo_account(book_of(account, r)) for r, s in stacks.items()]
        assert pool is not None
        assert all(b is not None for b in books)
        return (
            pool["balance"], [b["balance"] for b in books if b],
            sum(b["usage"]["tokens_spent"] for b in books if b),
        )  # fmt: skip

    async def spent_everywhere() -> bool:
        return all([await left(a) == (0, [0, 0], FUNDED) for a in accounts])

    try:
        await wait_for(spent_everywhere, 60, "every book and pool to be spent, once")
    except AssertionError as timeout:
        found = {a: await left(a) for a in accounts}
        pending = [await s.redis_pending_charges() for s in stacks.values()]
        raise AssertionError(f"{timeout}: {found}; pending charges {pending}") from None
    total_seen = sum(seen.values())
    assert total_seen <= ACCOUNTS * FUNDED
    assert total_seen >= ACCOUNTS * FUNDED - unknown, (total_seen, unknown)
    for stack in (eu, us):
        exit_code, report = await stack.maas("reconcile", "--json")
        assert exit_code == 0, report
        assert set(orjson.loads(report.splitlines()[-1])["statuses"]) == {"ok"}, report
    print(f"\n{total_seen} memes seen, {unknown} answers lost with a killed gateway")
