"""The token bank against real Redis and the store, with a fault injected between calls."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.local.stack import free_port, redis_server, start, stop_pid
from services.gateway.adapters.relay import MAX_BLOCK_MS, Relay
from services.gateway.sweeper import Sweeper
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import NotHydrated, Shipping, Status, TokenBank
from shared.keys import Keys
from shared.settings import Settings
from shared.sqs import QueueAddress, provision_queues, sqs_client
from shared.stores import Redis, mongo_client, redis_client
from tests.metrics import sample
from tests.stack import wait_for


class FlushedAfterHydration(TokenBank):
    """Redis loses the account right after each hydration (a failover at the worst time)."""

    async def hydrate(self, account: str) -> None:
        await super().hydrate(account)
        await self.redis.delete(self.keys.account(account))


@pytest.fixture
async def backends(servers_dir: Path, mongo_url: str) -> AsyncIterator[tuple[Redis, AccountStore]]:
    """A Redis of its own and the store, with the account `unlucky` holding 5 tokens."""
    port = free_port()
    data = servers_dir / f"bank-redis-{port}"
    data.mkdir()
    running = start(redis_server(port, data), servers_dir)
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", mongo_url=mongo_url,
                        mongo_db=f"bank_{port}")  # fmt: skip
    redis, mongo = redis_client(settings), mongo_client(settings)
    store = AccountStore(mongo[settings.mongo_db])
    await store.create("unlucky", 5)
    yield redis, store
    await redis.aclose()
    await mongo.close()
    stop_pid(running.process.pid)


@contextlib.asynccontextmanager
async def relay_on_its_own_queue(
    redis: Redis,
    keys: Keys,
    sqs_endpoint: str,
    linger_ms: int,
    lease_ttl_ms: int = 5000,
    max_block_ms: int = MAX_BLOCK_MS,
) -> AsyncIterator[Relay]:
    """A relay (batches of 100, a pass every 10 ms) over the given shards, sending to a
    fresh queue of its own."""
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        sqs_endpoint_url=sqs_endpoint,
        queue_name=f"relay-{run}.fifo",
        dlq_name=f"relay-{run}-dlq.fifo",
    )
    async with sqs_client(settings) as sqs:
        queue, _ = await provision_queues(sqs, settings)
        address = QueueAddress(sqs, "", queue)
        yield Relay(
            redis, sqs, address, keys, "test", 100, lease_ttl_ms, linger_ms, 10, max_block_ms
        )


def sqs_calls() -> float:
    return sample("maas_relay_sqs_requests_total", outcome="ok")


async def test_not_hydrated_after_the_retry_charges_nothing(
    backends: tuple[Redis, AccountStore],
) -> None:
    redis, store = backends
    bank = FlushedAfterHydration(redis, Keys(8), store, 60)
    with pytest.raises(NotHydrated):
        await bank.charge("unlucky", 1, None, "meme:text", "r-1", 5.0)
    assert await bank.redis.exists(bank.keys.outbox_of("unlucky")) == 0
    assert await bank.redis.hlen(bank.keys.pending(bank.keys.shard_of("unlucky"))) == 0


async def test_a_delivered_meme_left_unconfirmed_is_refunded_by_the_sweeper(
    backends: tuple[Redis, AccountStore],
) -> None:
    """The decision for an answer written whose record was not cleared: the meme is free."""
    redis, store = backends
    bank = TokenBank(redis, Keys(8), store, 60)
    charged, charge = await bank.charge("unlucky", 1, None, "meme:text", "r-2", 0.05)
    assert charge is not None
    assert charged.balance == 4
    shard = bank.keys.shard_of("unlucky")
    sweeper = Sweeper(bank, lambda: [shard], refund_within_s=0.05)
    before = sample("maas_charges_swept_total", outcome="applied")
    await asyncio.sleep(0.1)  # past the charge's deadline; the confirmation never came
    assert await sweeper.sweep_once() == 1
    assert await sweeper.sweep_once() == 0
    assert await bank.redis.hget(bank.keys.account("unlucky"), "balance") == "5"
    assert sample("maas_charges_swept_total", outcome="applied") == before + 1
    assert (await bank.refund(charge)).status == Status.NOTHING_TO_REFUND


async def test_a_charge_refunded_before_an_epoch_change_is_not_refunded_again_after_it(
    backends: tuple[Redis, AccountStore],
) -> None:
    """The sweeper refunds a handler stuck past its deadline; a settle starts a new epoch;
    then the handler fails and refunds the same charge: it must get nothing back."""
    redis, store = backends
    bank = TokenBank(redis, Keys(8), store, 60)
    await store.create("stuck", 10)
    _, charge = await bank.charge("stuck", 1, None, "meme:png", "r-3", 0.05)
    assert charge is not None
    assert (await bank.refund(charge)).status == Status.APPLIED  # the sweeper's
    # The ledger applied both the debit and the refund; then an operator settles.
    await store.accounts.update_one(
        {"_id": "stuck"}, {"$set": {"epoch": charge.epoch, "seq": charge.seq + 1}}
    )
    settled = await bank.settle("stuck")
    assert settled.epoch > charge.epoch
    again = await bank.refund(charge)  # the handler's, after its client went away
    assert (again.status, again.balance) == (Status.NOTHING_TO_REFUND, 10)
    assert await bank.balance("stuck") == 10


async def test_a_shard_someone_waits_on_is_sent_without_lingering(
    backends: tuple[Redis, AccountStore], sqs_endpoint: str
) -> None:
    """An error or a credit is answered once SQS has its event: the relay does not keep
    that caller waiting for a fuller batch (a minute's linger here)."""
    redis, store = backends
    bank = TokenBank(redis, Keys(8), store, 60)
    credited = await bank.credit("unlucky", 5, "purchase", "hurry", "fp")
    async with relay_on_its_own_queue(redis, bank.keys, sqs_endpoint, 60_000) as relay:
        await relay.renew_leases()
        assert await relay.relay_once(flush=False) == 0, "lingering for a fuller batch"
        waited = await bank.credit_shipped("unlucky", "hurry", credited.entry_id, 0)
        assert waited == Shipping.WAITING
        assert await relay.relay_once(flush=False) == 1
        assert (
            await bank.credit_shipped("unlucky", "hurry", credited.entry_id, 0) == Shipping.SHIPPED
        )


async def redis_calls(redis: Redis, command: str) -> int:
    """How many times Redis has run `command` since it started."""
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.parametrize("linger_ms", [0, 60_000])
async def test_an_idle_relay_blocks_on_its_streams_and_wakes_for_news(
    backends: tuple[Redis, AccountStore], sqs_endpoint: str, linger_ms: int
) -> None:
    """Between passes an idle relay waits on its shards' streams rather than polling
    Redis; an entry landing (no linger) or a caller hurrying its shard (a minute's
    linger) wakes it at once. It blocks up to 4 s here (its leases want renewing only
    every 20 s), so a relay that slept until then would miss the 2 s the test waits."""
    redis, store = backends
    bank = TokenBank(redis, Keys(8), store, 60)
    run = uuid.uuid4().hex[:8]
    async with relay_on_its_own_queue(
        redis, bank.keys, sqs_endpoint, linger_ms, lease_ttl_ms=60_000, max_block_ms=4000
    ) as relay:
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(0.5)  # its leases taken, its outbox empty
        passes = await redis_calls(redis, "evalsha")
        await asyncio.sleep(1)
        assert await redis_calls(redis, "evalsha") - passes <= 2, "polled while idle"
        credited = await bank.credit("unlucky", 1, "purchase", f"idle-{run}", "fp")
        if linger_ms:
            shipped = await bank.credit_shipped("unlucky", f"idle-{run}", credited.entry_id, 2)
            assert shipped == Shipping.SHIPPED
        else:
            await wait_for(
                lambda: _outbox_empty(redis, bank.keys.outbox_of("unlucky")), 2, "the relay"
            )
        stop.set()
        await running


async def _outbox_empty(redis: Redis, outbox: str) -> bool:
    return not await redis.xlen(outbox)


async def test_a_shard_due_fills_its_call_with_lingering_ones(
    backends: tuple[Redis, AccountStore], sqs_endpoint: str
) -> None:
    """A shard coming of age does not cost a SendMessageBatch call of its own: lingering
    shards ride along, up to the call's ten messages."""
    redis, store = backends
    bank = TokenBank(redis, Keys(8), store, 60)
    other = next(f"early-{n}" for n in range(100) if bank.keys.shard_of(f"early-{n}") != 0)
    first = next(f"late-{n}" for n in range(100) if bank.keys.shard_of(f"late-{n}") == 0)
    for account in (first, other):
        await store.create(account, 5)
    run = uuid.uuid4().hex[:8]
    async with relay_on_its_own_queue(redis, bank.keys, sqs_endpoint, 300) as relay:
        await relay.renew_leases()
        await bank.credit(first, 1, "purchase", f"due-{run}", "fp")
        await asyncio.sleep(0.35)  # its shard is due
        await bank.credit(other, 1, "purchase", f"lingering-{run}", "fp")  # this one is not
        calls = sqs_calls()
        assert await relay.relay_once(flush=False) == 2
        assert sqs_calls() - calls == 1  # one SendMessageBatch for both shards


async def test_shards_due_together_by_age_are_sent_a_call_a_pass(
    backends: tuple[Redis, AccountStore], sqs_endpoint: str
) -> None:
    """Shards that came of age together go one SendMessageBatch call a pass, the oldest
    first, so their sends spread out instead of reaching the pipeline in one burst."""
    redis, store = backends
    bank = TokenBank(redis, Keys(32), store, 60)
    accounts: dict[int, str] = {}
    for n in range(2000):
        accounts.setdefault(bank.keys.shard_of(f"aged-{n}"), f"aged-{n}")
        if len(accounts) == 25:
            break
    run = uuid.uuid4().hex[:8]
    async with relay_on_its_own_queue(redis, bank.keys, sqs_endpoint, 300) as relay:
        await relay.renew_leases()
        for account in accounts.values():
            await store.create(account, 5)
            await bank.credit(account, 1, "purchase", f"pace-{run}", "fp")
        await asyncio.sleep(0.35)  # all 25 shards past the linger
        sent = []
        for _ in range(3):
            calls = sqs_calls()
            sent.append(await relay.relay_once(flush=False))
            assert sqs_calls() - calls == 1
        assert sent == [10, 10, 5]
