"""Token amounts are bounded and exact end to end: Redis, the outbox, MongoDB, the API."""

from __future__ import annotations

import aiohttp

from shared.accounting.accounts import AccountStore
from shared.contract import MAX_BALANCE, MAX_TOKENS_PER_CALL
from shared.stores import mongo_client
from tests.stack import ServiceStack


async def test_credits_reach_the_largest_balance_exactly_and_no_further(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    stack = shared_stack
    room = 5
    mongo = mongo_client(stack.settings)
    try:  # years of purchases, as the ledger would have recorded them
        await AccountStore(mongo[stack.settings.mongo_db]).create("bounds-top", MAX_BALANCE - room)
    finally:
        await mongo.close()
    status, body = await stack.credit(http, "bounds-top", room + 1, "over")
    assert (status, body["error"]["code"]) == (409, "balance_limit")
    status, body = await stack.credit(http, "bounds-top", room, "to-the-top")
    assert (status, body["tokens"]) == (202, MAX_BALANCE)
    status, body = await stack.credit(http, "bounds-top", 1, "one-more")
    assert (status, body["error"]["code"]) == (409, "balance_limit")

    async with http.get(
        f"{stack.gateway}/memes", params={"query": "riches"}, headers=stack.auth("bounds-top")
    ) as response:
        assert (await response.json())["tokens_remaining"] == MAX_BALANCE - 1
    live = await stack.redis_account("bounds-top")
    assert live["balance"] == str(MAX_BALANCE - 1)  # an integer, never 1e+15
    await stack.drained("bounds-top")
    stored = await stack.mongo_account("bounds-top")
    assert stored is not None
    assert stored["balance"] == MAX_BALANCE - 1
    assert isinstance(stored["balance"], int)


async def test_amounts_out_of_range_are_400_and_change_nothing(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    stack = shared_stack
    await stack.create_account(http, "bounds-bad", 5)
    for amount in (0, -1, MAX_TOKENS_PER_CALL + 1, 2**53, 1.5, 1e13, "10", None, True):
        status, body = await stack.credit(http, "bounds-bad", amount, f"bad-{amount!s}")
        assert (status, body["error"]["code"]) == (400, "invalid_params"), amount
    for tokens in (MAX_TOKENS_PER_CALL + 1, -1, 2**63):
        async with http.post(
            f"{stack.gateway}/v1/accounts",
            json={"id": "bounds-new", "tokens": tokens},
            headers=stack.admin,
        ) as response:
            assert response.status == 400, tokens
    live = await stack.redis_account("bounds-bad")
    assert (live["balance"], live["seq"]) == ("5", "0")


async def test_an_integral_json_number_is_an_integer_amount(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    """JSON Schema's integers include 2.0, and the OpenAPI document says integer."""
    await shared_stack.create_account(http, "bounds-integral", 1)
    status, body = await shared_stack.credit(http, "bounds-integral", 2.0, "integral-1")
    assert (status, body["tokens"]) == (202, 3)
