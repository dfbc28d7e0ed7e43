"""One suite for the credit path's adapters, real and in memory.

`TokenBank.credit` on real Redis with `CreditLog` on the store, and the in-memory bank
with the in-memory credit log: the credit use case's unit tests rely on each behaviour
asserted here of both.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from services.gateway.usecases.credit import CreditAnswers, CreditBank
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import Shipping, Status, TokenBank, UnknownAccount
from shared.accounting.credits import CreditLog, FirstAnswer, fingerprint
from shared.accounting.events import Event
from shared.contract import MAX_BALANCE
from shared.stores import Redis
from tests.fakes.bank import InMemoryBank, InMemoryCreditLog
from tests.stack import real_bank

FP = fingerprint(5, "purchase")


@dataclass
class Subject:
    bank: CreditBank
    log: CreditAnswers

    async def open(self, balance: int) -> str:
        raise NotImplementedError

    async def ship(self, account: str) -> None:
        raise NotImplementedError

    async def forget_credit(self, account: str, key: str) -> None:
        raise NotImplementedError

    async def claimed(self, account: str, key: str, event_id: str) -> None:
        raise NotImplementedError

    async def roll_back(self, account: str, to_seq: int, balance: int) -> None:
        """Redis comes back from a snapshot taken at `to_seq` with `balance` (a failover)."""
        raise NotImplementedError


class RealSubject(Subject):
    def __init__(self, bank: TokenBank, log: CreditLog, store: AccountStore, redis: Redis):
        super().__init__(bank, log)
        self.real, self.real_log, self.store, self.redis = bank, log, store, redis

    async def open(self, balance: int) -> str:
        account = f"acct-{uuid.uuid4().hex[:12]}"
        await self.store.create(account, balance)
        await self.real.hydrate(account)
        return account

    async def ship(self, account: str) -> None:
        await self.redis.delete(self.real.keys.outbox_of(account))  # as the relay does

    async def forget_credit(self, account: str, key: str) -> None:
        await self.redis.delete(self.real.keys.idempotency(account, key))

    async def claimed(self, account: str, key: str, event_id: str) -> None:
        event = Event(event_id, "credit", account, 5, 1, 1, "purchase", key, "2026-12-06T00:00:00Z")
        assert await self.real_log.claim([event]) == {}

    async def roll_back(self, account: str, to_seq: int, balance: int) -> None:
        keys = self.real.keys
        await self.redis.hset(keys.account(account), mapping={"seq": to_seq, "balance": balance})
        idempotency = await self.redis.keys(keys.idempotency(account, "*"))
        if idempotency:
            await self.redis.delete(*idempotency)


class MemorySubject(Subject):
    def __init__(self) -> None:
        self.memory, self.memory_log = InMemoryBank(), InMemoryCreditLog()
        super().__init__(self.memory, self.memory_log)

    async def open(self, balance: int) -> str:
        account = f"acct-{uuid.uuid4().hex[:12]}"
        await self.memory.open(account, balance)
        return account

    async def ship(self, account: str) -> None:
        self.memory.ship()

    async def forget_credit(self, account: str, key: str) -> None:
        self.memory.forget_credit(account, key)

    async def claimed(self, account: str, key: str, event_id: str) -> None:
        self.memory_log.claimed(account, key, FP, event_id)

    async def roll_back(self, account: str, to_seq: int, balance: int) -> None:
        self.memory.roll_back(account, to_seq, balance)


@pytest.fixture(params=["redis", "memory"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    if request.param == "memory":
        yield MemorySubject()
        return
    async with real_bank(request) as bank:
        yield RealSubject(
            bank, CreditLog(bank.accounts.accounts.database), bank.accounts, bank.redis
        )


async def test_a_credit_applies_once_per_key_and_a_repeat_gets_the_first_answer(
    subject: Subject,
) -> None:
    account = await subject.open(10)
    first = await subject.bank.credit(account, 5, "purchase", "k1", FP)
    assert (first.status, first.balance) == (Status.APPLIED, 15)
    assert first.event_id
    assert first.entry_id
    again = await subject.bank.credit(account, 5, "purchase", "k1", FP)
    assert (again.status, again.balance, again.event_id) == (Status.REPLAYED, 15, first.event_id)
    other = await subject.bank.credit(account, 6, "purchase", "k1", fingerprint(6, "purchase"))
    assert other.status == Status.CONFLICT
    assert (await subject.bank.live(account)).balance == 15


async def test_a_credit_is_durable_once_shipped_and_not_after_its_record_is_lost(
    subject: Subject,
) -> None:
    account = await subject.open(10)
    credited = await subject.bank.credit(account, 5, "purchase", "k2", FP)
    shipped = subject.bank.credit_shipped
    assert await shipped(account, "k2", credited.entry_id, 0.05) == Shipping.WAITING
    await subject.ship(account)
    assert await shipped(account, "k2", credited.entry_id, 0.05) == Shipping.SHIPPED
    await subject.forget_credit(account, "k2")
    assert await shipped(account, "k2", credited.entry_id, 0.05) == Shipping.LOST


async def test_a_credit_over_the_balance_limit_changes_nothing(subject: Subject) -> None:
    account = await subject.open(MAX_BALANCE - 1)
    refused = await subject.bank.credit(account, 5, "purchase", "k3", FP)
    assert (refused.status, refused.balance) == (Status.OVER_LIMIT, MAX_BALANCE - 1)
    assert (await subject.bank.live(account)).balance == MAX_BALANCE - 1


async def test_an_unknown_account_cannot_be_credited(subject: Subject) -> None:
    with pytest.raises(UnknownAccount):
        await subject.bank.credit("nobody-here", 5, "purchase", "k4", FP)


async def test_the_first_answer_is_kept_and_a_claim_answers_without_tokens(
    subject: Subject,
) -> None:
    account = await subject.open(10)
    assert await subject.log.first_answer(account, "k5") is None
    await subject.log.record(account, "k5", FirstAnswer(FP, "event-1", 15))
    await subject.log.record(account, "k5", FirstAnswer(FP, "event-2", 20))  # a concurrent repeat
    answer = await subject.log.first_answer(account, "k5")
    assert answer is not None
    assert (answer["fingerprint"], answer["event_id"], answer["tokens"]) == (FP, "event-1", 15)
    await subject.claimed(account, "k6", "event-3")
    claim = await subject.log.first_answer(account, "k6")
    assert claim is not None
    assert (claim["fingerprint"], claim["event_id"], claim["tokens"]) == (FP, "event-3", None)


async def test_redis_holds_a_credit_until_it_rolls_back_past_it(subject: Subject) -> None:
    account = await subject.open(10)
    credited = await subject.bank.credit(account, 5, "purchase", "k7", FP)
    assert await subject.bank.holds(account, credited.epoch, credited.seq)
    assert await subject.bank.holds(account, 0, 0), "an unknown position counts as held"
    await subject.roll_back(account, credited.seq - 1, 10)
    assert not await subject.bank.holds(account, credited.epoch, credited.seq)
    again = await subject.bank.credit(account, 5, "purchase", "k7", FP)
    assert (again.status, again.balance, again.seq) == (Status.APPLIED, 15, credited.seq)
    assert await subject.bank.holds(account, credited.epoch, credited.seq)
    replay = await subject.bank.credit(account, 5, "purchase", "k7", FP)
    assert (replay.status, replay.epoch, replay.seq) == (Status.REPLAYED, again.epoch, again.seq)
