"""The sweeper's decisions against the contract-proven in-memory bank."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from services.gateway.sweeper import Sweeper
from shared.accounting.bank import Charge, Outcome, Shipping
from tests.fakes.bank import InMemoryBank
from tests.metrics import sample


async def charged(bank: InMemoryBank, account: str, due_s: float) -> Charge:
    if await bank.balance(account) is None:
        await bank.open(account, 10)
    _, charge = await bank.charge(account, 1, None, "meme:text", "r", due_s)
    assert charge is not None
    return charge


def accounts_in_distinct_shards(bank: InMemoryBank, count: int) -> list[str]:
    chosen: dict[int, str] = {}
    n = 0
    while len(chosen) < count:
        account = f"acct-{n}"
        chosen.setdefault(bank.keys.shard_of(account), account)
        n += 1
    return list(chosen.values())


async def test_overdue_charges_of_held_shards_are_refunded_and_nothing_else() -> None:
    bank = InMemoryBank()
    mine, other = accounts_in_distinct_shards(bank, 2)
    overdue = await charged(bank, mine, 0.0)
    not_yet = await charged(bank, mine, 60.0)
    delivered = await charged(bank, mine, 0.0)
    await bank.confirm(delivered)
    elsewhere = await charged(bank, other, 0.0)
    sweeper = Sweeper(bank, lambda: [bank.keys.shard_of(mine)], refund_within_s=0)
    assert await sweeper.sweep_once() == 1
    assert overdue.id not in bank.pending
    assert not_yet.id in bank.pending
    assert elsewhere.id in bank.pending, "another process holds that shard"
    assert await bank.balance(mine) == 10 - 2  # the delivered one and the one not yet due
    assert await sweeper.sweep_once() == 0, "a refunded charge is not swept again"


class OneRefundFails(InMemoryBank):
    """Redis refuses one charge's refund, every time (a poison record, a failing node)."""

    failing: str = ""

    async def refund(
        self, charge: Charge, undelivered: bool = False, overdue: bool = False
    ) -> Outcome:
        if charge.id == self.failing:
            raise ConnectionError("refund refused")
        return await super().refund(charge, undelivered, overdue)


async def test_one_charge_that_cannot_be_refunded_holds_up_no_other_charge_or_shard() -> None:
    bank = OneRefundFails()
    first, second = accounts_in_distinct_shards(bank, 2)
    stuck = await charged(bank, first, 0.0)
    same_shard = await charged(bank, first, 0.0)
    other_shard = await charged(bank, second, 0.0)
    bank.failing = stuck.id
    failures = sample("maas_sweep_failures_total", step="refund")
    sweeper = Sweeper(
        bank, lambda: [bank.keys.shard_of(first), bank.keys.shard_of(second)], refund_within_s=0
    )
    for _ in range(2):  # round after round
        await sweeper.sweep_once()
    assert same_shard.id not in bank.pending
    assert other_shard.id not in bank.pending
    assert stuck.id in bank.pending, "kept for the next round"
    assert sample("maas_sweep_failures_total", step="refund") == failures + 2


class OneShardUnlisted(InMemoryBank):
    """Listing one shard's overdue charges fails (its node out of reach)."""

    unlisted: int = -1

    async def overdue(self, shard: int, limit: int = 100) -> list[Charge]:
        if shard == self.unlisted:
            raise ConnectionError("node out of reach")
        return await super().overdue(shard, limit)


async def test_a_shard_that_cannot_be_listed_holds_up_no_other_shard() -> None:
    bank = OneShardUnlisted()
    first, second = accounts_in_distinct_shards(bank, 2)
    unlisted = await charged(bank, first, 0.0)
    listed = await charged(bank, second, 0.0)
    bank.unlisted = bank.keys.shard_of(first)
    failures = sample("maas_sweep_failures_total", step="list")
    sweeper = Sweeper(
        bank, lambda: [bank.keys.shard_of(first), bank.keys.shard_of(second)], refund_within_s=0
    )
    assert await sweeper.sweep_once() == 1
    assert listed.id not in bank.pending
    assert unlisted.id in bank.pending, "kept for the next round"
    assert sample("maas_sweep_failures_total", step="list") == failures + 1


async def test_a_sweeper_refund_redis_lost_before_sqs_had_it_is_issued_again() -> None:
    bank = InMemoryBank()
    (mine,) = accounts_in_distinct_shards(bank, 1)
    await charged(bank, mine, 0.0)
    bank.refunds_to_lose = 1
    assert await Sweeper(bank, lambda: [bank.keys.shard_of(mine)], refund_within_s=0).sweep_once()
    assert await bank.balance(mine) == 10
    assert [tokens for _, tokens in bank.refunds] == [1, 1], "the first was lost with Redis"
    assert bank.pending == {}


@dataclass
class RelayStopped(InMemoryBank):
    """Nothing ships: every refund waits its whole `timeout_s` for the relay."""

    waiting: asyncio.Event = field(default_factory=asyncio.Event)

    async def refund_shipped(self, charge: Charge, entry_id: str, timeout_s: float) -> Shipping:
        self.waiting.set()
        await asyncio.sleep(timeout_s)
        return Shipping.WAITING


async def test_a_sweep_in_progress_does_not_hold_up_the_gateways_stop() -> None:
    """On SIGTERM the relay stops with the sweeper: a round over 64 shards whose refunds
    each wait 5 s for shipping would keep the process alive for minutes."""
    bank = RelayStopped()
    accounts = accounts_in_distinct_shards(bank, 4)
    for account in accounts:
        await charged(bank, account, 0.0)
    sweeper = Sweeper(bank, lambda: [bank.keys.shard_of(a) for a in accounts], refund_within_s=5)
    stop = asyncio.Event()
    running = asyncio.create_task(sweeper.run(stop))
    await bank.waiting.wait()
    stop.set()
    await asyncio.wait_for(running, timeout=1)
    assert len(bank.pending) >= 2, "the shards the round had not reached wait for the next one"
