"""One suite, two banks: `TokenBank` on real Redis and the store, and the in-memory bank.

The meme use case's and the sweeper's unit tests run against the in-memory bank; this suite is what
makes that honest: every behaviour they rely on is asserted of both, here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
import pytest

from services.gateway.adapters.meme_client import Meme
from services.gateway.domain.params import MemeRequest
from services.gateway.drain import Drain
from services.gateway.sweeper import OverdueCharges, Sweeper
from services.gateway.usecases.order_meme import MemeCharges, order_meme
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import Charge, Shipping, Status, TokenBank, UnknownAccount
from shared.accounting.shapes import AccountField
from shared.auth import Principal
from shared.contract import Kind
from shared.errors import ApiError
from shared.keys import Keys
from shared.settings import RateLimit, Settings
from tests.fakes.bank import InMemoryBank
from tests.stack import real_bank


class Bank(MemeCharges, OverdueCharges, Protocol):
    async def balance(self, account: str) -> int | None: ...


@dataclass
class Subject:
    bank: Bank

    async def open(self, balance: int) -> str:
        account = f"acct-{uuid.uuid4().hex[:12]}"
        await self._open(account, balance)
        return account

    async def _open(self, account: str, balance: int) -> None:
        raise NotImplementedError

    async def lose(self, charge: Charge) -> None:
        """Redis comes back from a snapshot taken just before the charge (a failover)."""
        raise NotImplementedError

    async def ship(self, account: str, entry_id: str) -> None:
        """What the relay does with an outbox entry once SQS has it."""
        raise NotImplementedError

    async def lose_refund(self, charge: Charge, entry_id: str) -> None:
        """Redis comes back from a snapshot taken after the charge and before its refund
        (a failover to a replica behind): the charge pending and overdue again, the refund
        and its marker gone."""
        raise NotImplementedError

    async def charge(
        self, account: str, price: int = 1, limit: RateLimit | None = None, due_s: float = 5.0
    ) -> tuple[int, int, Charge | None, int]:
        outcome, charge = await self.bank.charge(account, price, limit, "meme:text", "r", due_s)
        return outcome.status, outcome.balance, charge, outcome.retry_after_ms

    async def charged(self, account: str, due_s: float) -> Charge:
        _, _, charge, _ = await self.charge(account, 1, due_s=due_s)
        assert charge is not None
        return charge


class RealSubject(Subject):
    def __init__(self, bank: TokenBank, store: AccountStore) -> None:
        super().__init__(bank)
        self.real, self.store = bank, store

    async def _open(self, account: str, balance: int) -> None:
        await self.store.create(account, balance)
        await self.real.hydrate(account)

    async def lose(self, charge: Charge) -> None:
        keys, redis = self.real.keys, self.real.redis
        shard = keys.shard_of(charge.account)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(keys.account(charge.account), AccountField.BALANCE, charge.price)
            pipe.hincrby(keys.account(charge.account), AccountField.CALLS, -1)
            pipe.hincrby(keys.account(charge.account), AccountField.SPENT, -charge.price)
            pipe.hdel(keys.pending(shard), charge.id)
            pipe.zrem(keys.deadlines(shard), charge.id)
            await pipe.execute()

    async def ship(self, account: str, entry_id: str) -> None:
        await self.real.redis.xdel(self.real.keys.outbox_of(account), entry_id)

    async def lose_refund(self, charge: Charge, entry_id: str) -> None:
        keys, redis = self.real.keys, self.real.redis
        shard = keys.shard_of(charge.account)
        record = orjson.dumps(
            [charge.account, charge.price, charge.epoch, charge.seq, charge.reason,
             charge.request_id]
        )  # fmt: skip
        seconds, _ = await redis.time()
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(keys.account(charge.account), AccountField.BALANCE, -charge.price)
            pipe.hincrby(keys.account(charge.account), AccountField.CALLS, 1)
            pipe.hincrby(keys.account(charge.account), AccountField.SPENT, charge.price)
            pipe.hset(keys.pending(shard), charge.id, record)
            pipe.zadd(keys.deadlines(shard), {charge.id: seconds * 1000})
            pipe.delete(keys.refund_decided(charge.account, charge.id))
            pipe.xdel(keys.outbox(shard), entry_id)
            await pipe.execute()


class MemorySubject(Subject):
    def __init__(self) -> None:
        self.memory = InMemoryBank()
        super().__init__(self.memory)

    async def _open(self, account: str, balance: int) -> None:
        await self.memory.open(account, balance)

    async def lose(self, charge: Charge) -> None:
        self.memory.lose_charge(charge)

    async def ship(self, account: str, entry_id: str) -> None:
        self.memory.unshipped.discard(entry_id)

    async def lose_refund(self, charge: Charge, entry_id: str) -> None:
        self.memory.lose_refund(charge, entry_id)


@pytest.fixture(params=["redis", "memory"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    if request.param == "memory":
        yield MemorySubject()
        return
    async with real_bank(request) as bank:
        yield RealSubject(bank, bank.accounts)


async def test_a_charge_debits_and_leaves_a_pending_charge(subject: Subject) -> None:
    account = await subject.open(10)
    status, balance, charge, _ = await subject.charge(account, 3)
    assert (status, balance) == (Status.APPLIED, 7)
    assert charge is not None
    assert (charge.account, charge.price, charge.seq) == (account, 3, 1)
    assert await subject.bank.balance(account) == 7


async def test_too_few_tokens_charge_nothing(subject: Subject) -> None:
    account = await subject.open(1)
    status, balance, charge, _ = await subject.charge(account, 2)
    assert (status, balance, charge) == (Status.INSUFFICIENT, 1, None)
    assert await subject.bank.balance(account) == 1


async def test_a_refund_gives_the_charge_back_once(subject: Subject) -> None:
    account = await subject.open(5)
    _, _, charge, _ = await subject.charge(account, 2)
    assert charge is not None
    refunded = await subject.bank.refund(charge)
    assert (refunded.status, refunded.balance) == (Status.APPLIED, 5)
    again = await subject.bank.refund(charge)
    assert (again.status, again.balance) == (Status.NOTHING_TO_REFUND, 5)
    assert await subject.bank.balance(account) == 5


async def test_a_charge_redis_lost_is_left_to_the_ledger_once_by_its_own_handler(
    subject: Subject,
) -> None:
    """Only the handler knows its meme failed; a sweeper may race a confirmation."""
    account = await subject.open(5)
    _, _, charge, _ = await subject.charge(account, 2)
    assert charge is not None
    await subject.lose(charge)
    swept = await subject.bank.refund(charge)
    assert (swept.status, swept.balance) == (Status.NOTHING_TO_REFUND, 5)
    refunded = await subject.bank.refund(charge, undelivered=True)
    assert (refunded.status, refunded.balance) == (Status.LEFT_TO_LEDGER, 5)
    again = await subject.bank.refund(charge, undelivered=True)
    assert (again.status, again.balance) == (Status.NOTHING_TO_REFUND, 5)
    assert await subject.bank.balance(account) == 5


async def test_a_refunded_charge_is_not_left_to_the_ledger_again(subject: Subject) -> None:
    account = await subject.open(5)
    charge = await subject.charged(account, 0.0)
    assert (await subject.bank.refund(charge)).status == Status.APPLIED  # the sweeper's
    late = await subject.bank.refund(charge, undelivered=True)
    assert (late.status, late.balance) == (Status.NOTHING_TO_REFUND, 5)


async def test_a_confirmed_charge_is_final(subject: Subject) -> None:
    account = await subject.open(5)
    _, _, charge, _ = await subject.charge(account, 2)
    assert charge is not None
    await subject.bank.confirm(charge)
    late = await subject.bank.refund(charge)
    assert (late.status, late.balance) == (Status.NOTHING_TO_REFUND, 3)


async def test_an_unknown_account_is_refused(subject: Subject) -> None:
    with pytest.raises(UnknownAccount):
        await subject.bank.charge("nobody-here", 1, None, "meme:text", "r", 5.0)


async def test_the_bucket_admits_its_burst_then_says_when_to_retry(subject: Subject) -> None:
    account = await subject.open(100)
    slow = RateLimit(rate=0.5, burst=2)
    assert (await subject.charge(account, 1, slow))[0] == Status.APPLIED
    assert (await subject.charge(account, 1, slow))[0] == Status.APPLIED
    status, balance, charge, retry_after_ms = await subject.charge(account, 1, slow)
    assert (status, balance, charge) == (Status.RATE_LIMITED, 98, None)
    assert 1000 <= retry_after_ms <= 2000


async def test_only_pending_charges_past_their_deadline_are_overdue(subject: Subject) -> None:
    account = await subject.open(10)
    shard = Keys(8).shard_of(account)
    due, _not_yet_due, delivered, refunded = [
        await subject.charged(account, due_s) for due_s in (0.0, 60.0, 0.0, 0.0)
    ]
    await subject.bank.confirm(delivered)
    await subject.bank.refund(refunded)
    await asyncio.sleep(0.01)  # past the deadline of 0 s, at millisecond resolution
    # The shared shard may hold other tests' charges: only this account's are looked at.
    overdue = [c for c in await subject.bank.overdue(shard) if c.account == account]
    assert [charge.id for charge in overdue] == [due.id]
    assert overdue[0] == due, "the pending record carries what a refund needs"
    elsewhere = await subject.bank.overdue((shard + 1) % 8)
    assert [c for c in elsewhere if c.account == account] == []


async def test_a_charge_held_for_delivery_is_not_overdue_until_the_hold_ends(
    subject: Subject,
) -> None:
    account = await subject.open(10)
    shard = Keys(8).shard_of(account)
    charge = await subject.charged(account, 0.0)
    await asyncio.sleep(0.01)

    async def overdue() -> list[str]:  # the shared shard may hold other tests' charges
        return [c.id for c in await subject.bank.overdue(shard) if c.account == account]

    assert await overdue() == [charge.id]
    assert await subject.bank.hold(charge, 60.0)
    assert await overdue() == []
    await subject.bank.confirm(charge)
    assert await subject.bank.balance(account) == 9


async def test_the_sweeper_refunds_only_what_is_still_overdue_and_a_swept_charge_is_not_held(
    subject: Subject,
) -> None:
    """The sweeper lists a charge, its handler holds it to write the meme, the sweeper's
    refund then leaves it; a charge the sweeper refunded first cannot be held."""
    account = await subject.open(10)
    listed, swept = await subject.charged(account, 0.0), await subject.charged(account, 0.0)
    await asyncio.sleep(0.01)
    assert await subject.bank.hold(listed, 60.0)
    assert (await subject.bank.refund(listed, overdue=True)).status == Status.NOT_DUE
    assert (await subject.bank.refund(swept, overdue=True)).status == Status.APPLIED
    assert not await subject.bank.hold(swept, 60.0)
    assert await subject.bank.balance(account) == 9


async def test_a_meme_made_after_the_sweeper_refunded_its_charge_is_answered_504(
    subject: Subject,
) -> None:
    """Found by `make chaos`: the handler froze (a paused gateway) past its charge's
    deadline, and the sweeper refunded the charge meanwhile. The meme the handler then
    holds is not given away: 504, nothing charged, refunded once."""
    account = await subject.open(10)
    instant = Settings(
        meme_timeout_s=0.001, charge_settle_margin_s=0.001, refund_durable_within_s=0.05
    )
    sweeper = Sweeper(subject.bank, lambda: [Keys(8).shard_of(account)], refund_within_s=0.05)
    delivered: list[Meme] = []

    async def made_while_frozen() -> Meme:
        await asyncio.sleep(0.02)  # past the deadline
        await sweeper.sweep_once()  # the shard may hold other tests' overdue charges too
        assert await subject.bank.balance(account) == 10, "the sweeper refunded this charge"
        return Meme({"text": "late", "location": None})

    async def deliver(meme: Meme, price: int, remaining: int) -> None:
        delivered.append(meme)

    with pytest.raises(ApiError) as raised:
        await order_meme(
            bank=subject.bank,
            memes=Scripted(made_while_frozen),
            drain=Drain(25.0),
            settings=instant,
            principal=Principal(account, frozenset(), 0.0),
            params=MemeRequest("cats", None, None, None, "json"),
            kind="text",
            request_id="r",
            deliver=deliver,
        )
    assert (raised.value.status, delivered) == (504, [])
    assert await subject.bank.balance(account) == 10


@dataclass
class Scripted:
    make: Callable[[], Awaitable[Meme]]

    async def generate(self, params: MemeRequest, kind: Kind, request_id: str) -> Meme:
        return await self.make()


async def test_a_refund_is_durable_once_shipped_and_lost_if_redis_rolls_back_before(
    subject: Subject,
) -> None:
    account = await subject.open(10)
    charge = await subject.charged(account, due_s=5.0)
    refunded = await subject.bank.refund(charge, undelivered=True)
    assert (refunded.status, refunded.balance) == (Status.APPLIED, 10)
    assert await subject.bank.refund_shipped(charge, refunded.entry_id, 0.05) == Shipping.WAITING
    await subject.lose_refund(charge, refunded.entry_id)
    assert await subject.bank.balance(account) == 9
    assert await subject.bank.refund_shipped(charge, refunded.entry_id, 0.05) == Shipping.LOST
    again = await subject.bank.refund(charge, undelivered=True)
    assert (again.status, again.balance) == (Status.APPLIED, 10)
    await subject.ship(account, again.entry_id)
    assert await subject.bank.refund_shipped(charge, again.entry_id, 0.05) == Shipping.SHIPPED
