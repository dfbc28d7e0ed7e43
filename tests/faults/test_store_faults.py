"""The store under concurrent writes and a short outage: account creates never answer 500."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest

from shared.store_retry import BUDGET_S
from tests.stack import PrivateStore, ServiceStack, StackFactory

CONCURRENT = 32


async def create_all(
    stack: ServiceStack, http: aiohttp.ClientSession, accounts: list[str]
) -> Counter[int]:
    async def create(account: str) -> int:
        async with http.post(
            f"{stack.gateway}/v1/accounts",
            json={"id": account, "tokens": 10},
            headers=stack.admin,
        ) as response:
            return response.status

    return Counter(await asyncio.gather(*(create(a) for a in accounts)))


async def test_32_concurrent_account_creates_all_answer_201(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack()
    accounts = [f"burst-{n}" for n in range(CONCURRENT)]
    assert await create_all(stack, http, accounts) == {201: CONCURRENT}
    stored = [await stack.mongo_account(a) for a in accounts]
    assert [doc["balance"] if doc else None for doc in stored] == [10] * CONCURRENT


@pytest.mark.slow
async def test_creates_wait_out_a_store_restart_longer_than_server_selection(
    private_store: PrivateStore, make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """FerretDB is away for over 3 s (3.2 s, then its start), longer than one attempt's 3 s
    wait for a server: the second attempt finds it back. A machine so busy that FerretDB
    took more than the retry budget to start again gets 503s, never a 500."""
    stack = await make_stack(mongo_url=private_store.url)
    await stack.create_account(http, "before", 10)
    await asyncio.to_thread(private_store.stop, private_store.front)
    loop = asyncio.get_running_loop()
    away_since = loop.time()

    async def come_back() -> float:
        await asyncio.sleep(3.2)
        await asyncio.to_thread(private_store.start, private_store.front)
        return loop.time() - away_since

    accounts = [f"during-{n}" for n in range(CONCURRENT)]
    statuses, away_s = await asyncio.gather(create_all(stack, http, accounts), come_back())
    assert set(statuses) <= {201, 503}, statuses
    if away_s <= BUDGET_S:  # back within the budget: nobody was turned away
        assert statuses == {201: CONCURRENT}, f"the store was away {away_s:.1f} s"
        assert all([await stack.mongo_account(a) for a in accounts])
