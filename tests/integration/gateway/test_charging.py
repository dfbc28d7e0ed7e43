"""Money-like behaviour under concurrency: no overspend, credits once, honest limits."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp

from shared.keys import Keys
from shared.stores import mongo_client, redis_client
from tests.stack import PARIS, ServiceStack, StackFactory

GENEROUS = {"default": {"rate": 100_000, "burst": 100_000}}


async def test_500_concurrent_requests_on_100_tokens_sell_exactly_100(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(rate_limits=GENEROUS)
    headers = await stack.create_account(http, "crowd", 100)
    connector = aiohttp.TCPConnector(limit=500)
    async with aiohttp.ClientSession(connector=connector) as crowd:

        async def one() -> int:
            async with crowd.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
                await r.read()
                return r.status

        statuses = Counter(await asyncio.gather(*(one() for _ in range(500))))
    assert statuses == {200: 100, 402: 400}
    await stack.drained("crowd")
    stored = await stack.mongo_account("crowd")
    assert stored is not None
    assert (stored["balance"], stored["seq"], stored["usage"]["calls"]) == (0, 100, 100)
    assert stored["usage"]["tokens_spent"] == 100


async def test_one_idempotency_key_sent_20_times_at_once_credits_once(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack()
    await stack.create_account(http, "buyer", 10)
    url = f"{stack.gateway}/v1/accounts/buyer/credits"
    headers = {**stack.admin, "Idempotency-Key": "order-1234"}

    async def credit() -> tuple[int, dict[str, object]]:
        async with http.post(url, json={"amount": 50, "reason": "purchase"}, headers=headers) as r:
            return r.status, await r.json()

    answers = await asyncio.gather(*(credit() for _ in range(20)))
    assert {status for status, _ in answers} == {202}
    assert len({body["event_id"] for _, body in answers}) == 1
    assert {body["tokens"] for _, body in answers} == {60}
    async with http.post(url, json={"amount": 5, "reason": "purchase"}, headers=headers) as r:
        assert r.status == 409
        assert (await r.json())["error"]["code"] == "idempotency_conflict"
    async with http.post(
        url, json={"amount": 50}, headers={**stack.admin, "Idempotency-Key": "order-1235"}
    ) as r:
        assert (r.status, (await r.json())["tokens"]) == (202, 110)
    await stack.drained("buyer")
    stored = await stack.mongo_account("buyer")
    assert stored is not None
    assert (stored["balance"], stored["seq"]) == (110, 2)


async def test_credits_validate_their_input(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack()
    await stack.create_account(http, "strict", 1)
    url = f"{stack.gateway}/v1/accounts/strict/credits"
    cases = [
        ({}, {"amount": 5}),
        ({"Idempotency-Key": "k 1"}, {"amount": 5}),
        ({"Idempotency-Key": "k1"}, {"amount": 0}),
        ({"Idempotency-Key": "k1"}, {"amount": -5}),
        ({"Idempotency-Key": "k1"}, {"amount": "5"}),
        ({"Idempotency-Key": "k1"}, {"amount": 5, "reason": ""}),
        ({"Idempotency-Key": "k1"}, {"amount": 5, "reason": "r" * 101}),
        # Characters SQS refuses would stall the shard's relay behind this credit.
        ({"Idempotency-Key": "k1"}, {"amount": 5, "reason": "gift \ufffe"}),
        ({"Idempotency-Key": "k1"}, {"amount": 5, "reason": "gift \u0000"}),
    ]
    for extra, body in cases:
        async with http.post(url, json=body, headers={**stack.admin, **extra}) as r:
            assert r.status == 400, (extra, body)
    async with http.post(
        f"{stack.gateway}/v1/accounts/ghost/credits",
        json={"amount": 5},
        headers={**stack.admin, "Idempotency-Key": "k1"},
    ) as r:
        assert r.status == 404
    assert (await stack.redis_account("strict"))["balance"] == "1"


async def test_a_burst_over_the_limit_gets_429_with_an_honest_retry_after(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(rate_limits={"default": {"rate": 1, "burst": 3}})
    headers = await stack.create_account(http, "hasty", 100)
    statuses, retry_after = [], None
    for _ in range(5):
        async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
            statuses.append(r.status)
            if r.status == 429:
                retry_after = int(r.headers["Retry-After"])
                assert (await r.json())["error"]["code"] == "rate_limited"
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    assert retry_after == 1
    assert (await stack.redis_account("hasty"))["balance"] == "97"
    started = time.monotonic()
    await asyncio.sleep(retry_after)
    async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
        assert r.status == 200, f"still limited {time.monotonic() - started:.2f} s later"


async def test_a_credit_retried_after_redis_lost_its_data_is_not_applied_twice(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack()
    await stack.create_account(http, "durable", 10)
    url = f"{stack.gateway}/v1/accounts/durable/credits"
    headers = {**stack.admin, "Idempotency-Key": "invoice-77"}
    async with http.post(url, json={"amount": 25}, headers=headers) as r:
        first = await r.json()
    assert (r.status, first["tokens"]) == (202, 35)
    await stack.drained("durable")
    await stack.flush_redis()
    async with http.post(url, json={"amount": 25}, headers=headers) as r:
        assert (r.status, await r.json()) == (202, first)
    async with http.post(url, json={"amount": 26}, headers=headers) as r:
        assert r.status == 409
    async with http.get(f"{stack.gateway}/v1/account", headers=stack.auth("durable")) as r:
        assert (await r.json())["tokens"] == 35


async def test_idempotency_keys_of_different_accounts_never_collide(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    """`org` + `acme:inv-1` and `org:acme` + `inv-1` once spelled the same record."""
    stack = shared_stack
    await stack.create_account(http, "org", 1)
    await stack.create_account(http, "org:acme", 1)
    for account, key in (("org", "acme:inv-1"), ("org:acme", "inv-1")):
        async with http.post(
            f"{stack.gateway}/v1/accounts/{account}/credits",
            json={"amount": 5},
            headers={**stack.admin, "Idempotency-Key": key},
        ) as r:
            assert (r.status, (await r.json())["tokens"]) == (202, 6), account
    for account in ("org", "org:acme"):
        async with http.get(f"{stack.gateway}/v1/account", headers=stack.auth(account)) as r:
            assert (await r.json())["tokens"] == 6, account


async def test_a_path_account_is_validated_like_a_token_subject(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    headers = {**shared_stack.admin, "Idempotency-Key": "k-1"}
    for path in ("/v1/accounts/bad%20id/credits", "/v1/accounts/-dash/credits"):
        async with http.post(
            f"{shared_stack.gateway}{path}", json={"amount": 1}, headers=headers
        ) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (400, "invalid_params")
    async with http.get(f"{shared_stack.gateway}/v1/accounts/bad%20id", headers=headers) as r:
        assert r.status == 400


async def test_a_credit_retried_after_its_redis_record_is_deleted_credits_once(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    stack = shared_stack
    await stack.create_account(http, "retried", 0)
    url = f"{stack.gateway}/v1/accounts/retried/credits"
    headers = {**stack.admin, "Idempotency-Key": "inv-9"}
    async with http.post(url, json={"amount": 7}, headers=headers) as r:
        first = await r.json()
    redis = redis_client(stack.settings)
    try:
        assert await redis.delete(Keys(stack.settings.shards).idempotency("retried", "inv-9")) == 1
    finally:
        await redis.aclose()
    async with http.post(url, json={"amount": 7}, headers=headers) as r:
        assert (r.status, await r.json()) == (202, first)
    await stack.drained("retried")
    assert (await stack.redis_account("retried"))["balance"] == "7"
    stored = await stack.mongo_account("retried")
    assert stored is not None
    assert stored["balance"] == 7


async def test_a_credit_retried_after_both_its_records_were_lost_counts_once(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    """Its first answer was a 503 (no MongoDB record) and Redis lost the key: the ledger's
    claim of the first credit answers the retry. (A repeat still in flight is voided by the
    ledger: tests/integration/ledger/test_repeated_credits.py.)"""
    stack = shared_stack
    await stack.create_account(http, "twice", 0)
    url = f"{stack.gateway}/v1/accounts/twice/credits"
    headers = {**stack.admin, "Idempotency-Key": "inv-10"}
    async with http.post(url, json={"amount": 7}, headers=headers) as r:
        first = await r.json()
    await stack.drained("twice")
    redis, mongo = redis_client(stack.settings), mongo_client(stack.settings)
    try:
        await redis.delete(Keys(stack.settings.shards).idempotency("twice", "inv-10"))
        await mongo[stack.settings.mongo_db]["credits"].delete_one({"_id": "twice/inv-10"})
    finally:
        await redis.aclose()
        await mongo.close()
    async with http.post(url, json={"amount": 7}, headers=headers) as r:
        assert (r.status, await r.json()) == (202, first)
    async with http.post(url, json={"amount": 8}, headers=headers) as r:
        assert r.status == 409
    assert (await stack.redis_account("twice"))["balance"] == "7"
    stored = await stack.mongo_account("twice")
    assert stored is not None
    assert (stored["balance"], stored["seq"]) == (7, 1)
