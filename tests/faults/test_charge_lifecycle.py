"""Every charge ends delivered or refunded: through SIGTERM, SIGKILL, refund failures and
Redis losing data, the books stay exact (delivered memes x price = debits - refunds)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from infra.local.stack import free_port, redis_server, start
from shared.keys import Keys
from shared.stores import mongo_client
from tests.fakes.openai_server import FakeOpenAI
from tests.stack import PARIS, ServiceStack, StackFactory, memes_in_flight, wait_for

GENEROUS = {"default": {"rate": 100_000, "burst": 100_000}}
AI = {**PARIS, "kind": "ai"}


@pytest.fixture
async def ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def sigterm_gateway(stack: ServiceStack) -> asyncio.Future[int]:
    """SIGTERM the gateway without blocking the loop the fakes run on; await its exit."""
    running = stack.processes.pop("gateway")
    os.killpg(running.process.pid, signal.SIGTERM)
    return asyncio.ensure_future(asyncio.to_thread(running.process.wait, 60))


async def books(
    stack: ServiceStack, account: str, timeout_s: float = 60
) -> tuple[int, int, int, int]:
    """(Redis balance, MongoDB balance, Redis calls, MongoDB calls) once drained."""
    await stack.drained(account, timeout_s=timeout_s)
    live, stored = await stack.redis_account(account), await stack.mongo_account(account)
    assert stored is not None
    return int(live["balance"]), stored["balance"], int(live["calls"]), stored["usage"]["calls"]


async def ai_meme_then_sigterm(
    make_stack: StackFactory,
    ai: FakeOpenAI,
    http: aiohttp.ClientSession,
    account: str,
    drain_s: float,
) -> tuple[ServiceStack, int, dict[str, Any]]:
    """An AI meme whose model answers slowly; SIGTERM lands while it is in flight."""
    stack = await make_stack(openai_base_url=ai.url, openai_api_key="k", gateway_drain_s=drain_s)
    await stack.create_account(http, account, 10)
    meme = asyncio.ensure_future(
        http.get(f"{stack.gateway}/memes", params=AI, headers=stack.auth(account, ("ai",)))
    )
    await ai.wait_for_calls(1)
    exited = await sigterm_gateway(stack)
    async with await meme as response:
        status, body = response.status, await response.json()
    assert await exited == 0
    return stack, status, body


async def test_sigterm_lets_an_ai_meme_in_flight_finish_and_charges_it_once(
    make_stack: StackFactory, ai: FakeOpenAI, http: aiohttp.ClientSession
) -> None:
    ai.slow(2.0)
    stack, status, body = await ai_meme_then_sigterm(make_stack, ai, http, "drained", 10)
    assert (status, body["kind"], body["tokens_remaining"]) == (200, "ai", 8)
    assert await stack.redis_pending_charges() == 0
    await stack.start("gateway")
    assert await books(stack, "drained") == (8, 8, 1, 1)


async def test_sigterm_refunds_a_call_that_outlasts_the_drain_window(
    make_stack: StackFactory, ai: FakeOpenAI, http: aiohttp.ClientSession
) -> None:
    ai.slow(60)
    stack, status, body = await ai_meme_then_sigterm(make_stack, ai, http, "cut-short", 1)
    assert status == 503
    assert (body["error"]["code"], body["error"]["tokens_remaining"]) == ("shutting_down", 10)
    ai.release()
    await stack.start("gateway")
    assert await books(stack, "cut-short") == (10, 10, 0, 0)


async def test_sigkill_with_200_memes_in_flight_is_settled_by_the_sweeper(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(
        own_meme=True, rate_limits=GENEROUS, meme_timeout_s=1.0, charge_settle_margin_s=1.0
    )
    headers = await stack.create_account(http, "swept", 1_000)
    meme = stack.processes["meme"].process

    async def freeze_then_kill() -> None:
        meme.send_signal(signal.SIGSTOP)  # the rest wait on a frozen meme service
        await asyncio.sleep(0.3)
        stack.kill("gateway")
        meme.send_signal(signal.SIGCONT)

    # Frozen after a quarter, with requests still coming: those sent while the meme
    # service is frozen are charged and wait, in flight when the gateway dies.
    delivered = await memes_in_flight(stack, headers, 200, 50, freeze_then_kill, spread_s=2)
    assert 50 <= len(delivered) < 200
    assert await stack.redis_pending_charges() > 0

    await stack.start("gateway")

    async def swept() -> bool:
        return await stack.redis_pending_charges() == 0

    await wait_for(swept, 30, "the sweeper to settle the dead gateway's charges")
    live, stored, live_calls, stored_calls = await books(stack, "swept")
    assert live == stored == 1_000 - len(delivered)
    assert live_calls == stored_calls == len(delivered)


async def test_a_refund_that_fails_is_settled_by_the_sweeper(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(own_meme=True, meme_timeout_s=1.5, charge_settle_margin_s=1.0)
    await stack.create_account(http, "unrefunded", 10)
    meme = stack.processes["meme"].process
    meme.send_signal(signal.SIGSTOP)
    try:
        answer = asyncio.ensure_future(
            http.get(f"{stack.gateway}/memes", params=PARIS, headers=stack.auth("unrefunded"))
        )

        async def charged() -> bool:
            return (await stack.redis_account("unrefunded"))["balance"] == "9"

        await wait_for(charged, 10, "the charge")
        await stack.stop("redis")  # a clean shutdown: the AOF keeps the pending charge
        async with await answer as response:
            body = await response.json()
            assert (response.status, body["error"].get("refund")) == (504, "pending"), body
    finally:
        meme.send_signal(signal.SIGCONT)
    redis_dir = stack.run_dir / "redis"
    stack.processes["redis"] = await asyncio.to_thread(
        start, redis_server(stack.settings.redis_port, redis_dir), stack.run_dir
    )

    async def refunded() -> bool:
        return (await stack.redis_account("unrefunded"))["balance"] == "10"

    await wait_for(refunded, 20, "the sweeper's refund")
    assert await stack.redis_pending_charges() == 0
    assert await books(stack, "unrefunded") == (10, 10, 0, 0)


async def charge_then_lose_the_account(
    stack: ServiceStack, http: aiohttp.ClientSession, account: str, *, after_applied: bool
) -> dict[str, Any]:
    """A charge whose meme hangs; Redis loses the account meanwhile; the meme then fails."""
    keys = Keys(stack.settings.shards)
    redis = aioredis.Redis.from_url(stack.settings.redis_url)
    meme = stack.processes["meme"].process
    meme.send_signal(signal.SIGSTOP)
    try:
        answer = asyncio.ensure_future(
            http.get(f"{stack.gateway}/memes", params=PARIS, headers=stack.auth(account))
        )

        async def charged() -> bool:
            return (await stack.redis_account(account)).get("seq") == "1"

        await wait_for(charged, 10, "the charge")
        if after_applied:
            await stack.drained(account)
        await redis.delete(keys.account(account), keys.outbox_of(account))
        async with await answer as response:
            assert response.status == 504
            body: dict[str, Any] = await response.json()
    finally:
        meme.send_signal(signal.SIGCONT)
        await redis.aclose()
    return body


async def test_a_debit_lost_with_redis_data_is_not_refunded(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(own_meme=True, meme_timeout_s=1.0, relay_linger_ms=60_000)
    await stack.create_account(http, "lost", 10)
    body = await charge_then_lose_the_account(stack, http, "lost", after_applied=False)
    assert body["error"]["tokens_remaining"] == 10  # not 11: the debit was never counted
    assert (await stack.redis_account("lost"))["balance"] == "10"
    # The refund still goes to the ledger (the debit might have been shipped before the
    # loss), after the relay's linger; the ledger finds no such charge and voids it.
    assert await books(stack, "lost", timeout_s=120) == (10, 10, 0, 0)
    mongo = mongo_client(stack.settings)
    try:
        journal = [doc async for doc in mongo[stack.settings.mongo_db]["ledger"].find()]
    finally:
        await mongo.close()
    (refund,) = [doc for doc in journal if doc["account"] == "lost"]
    assert refund["type"] == "refund"
    assert "never reached MongoDB" in refund["void_reason"]


async def test_a_debit_applied_before_the_data_loss_is_refunded_and_journaled(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(own_meme=True, meme_timeout_s=5.0)
    await stack.create_account(http, "kept", 10)
    body = await charge_then_lose_the_account(stack, http, "kept", after_applied=True)
    assert body["error"]["tokens_remaining"] == 10
    assert await books(stack, "kept") == (10, 10, 0, 0)
    mongo = mongo_client(stack.settings)
    try:
        journal = [
            (doc["type"], doc["epoch"], doc["seq"])
            async for doc in mongo[stack.settings.mongo_db]["ledger"]
            .find({"account": "kept"})
            .sort([("epoch", 1), ("seq", 1)])
        ]
    finally:
        await mongo.close()
    assert journal == [("debit", 1, 1), ("refund", 2, 1)]


async def test_while_redis_is_down_clients_get_503_with_retry_after_and_no_charge(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """Found by `make chaos`: every request while Redis restarted was a 500."""
    stack = await make_stack()
    headers = await stack.create_account(http, "outage", 10)
    stack.kill("redis")
    for path, params in (("/memes", PARIS), ("/v1/tokens", {})):
        async with http.get(f"{stack.gateway}{path}", params=params, headers=headers) as answer:
            body = await answer.json()
            assert (answer.status, body["error"]["code"]) == (503, "upstream_unavailable"), body
            assert answer.headers["Retry-After"] == "1"
    stored = await stack.mongo_account("outage")
    assert stored is not None
    assert stored["balance"] == 10


async def test_a_gateway_started_while_sqs_is_unreachable_serves_memes(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """Found by `make chaos`: a gateway killed during an SQS outage stayed down until SQS
    came back (it asked for the queue's URL before serving). Memes need only Redis; the
    relay ships the outbox once SQS answers."""
    stack = await make_stack()
    headers = await stack.create_account(http, "no-sqs", 10)
    reachable = stack.values["sqs_endpoint_url"]
    stack.values["sqs_endpoint_url"] = f"http://127.0.0.1:{free_port()}"  # nothing listens
    try:
        gateway = await stack.start_replica("gateway", "gateway-without-sqs")
    finally:
        stack.values["sqs_endpoint_url"] = reachable
    async with http.get(f"{gateway}/memes", params=PARIS, headers=headers) as answer:
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["tokens_remaining"] == 9
    async with http.get(f"{gateway}/readyz") as ready:
        assert ready.status == 503
        assert (await ready.json())["checks"]["sqs"] is False
    assert await books(stack, "no-sqs") == (9, 9, 1, 1), "a relay that reaches SQS shipped it"
