"""An in-memory bank and credit log for the use cases' unit tests.

They keep what the charge, refund, confirm and credit scripts and the credit records
keep (balance, seq, pending charges, a token bucket, idempotency records, the outbox
entries not shipped yet) in dictionaries. `tests/contracts/` runs one suite against
them and against `TokenBank` on real Redis and `CreditLog` on the store, so a unit test
that passes here would pass there.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import asdict, dataclass, field

from shared.accounting.bank import (
    Charge,
    LiveAccount,
    Outcome,
    Shipping,
    Status,
    UnknownAccount,
)
from shared.accounting.credits import FirstAnswer
from shared.contract import MAX_BALANCE
from shared.keys import Keys
from shared.settings import RateLimit
from shared.stores import MongoDoc

EPOCH = 1  # the first hydration's epoch


@dataclass
class Account:
    balance: int
    seq: int = 0
    calls: int = 0
    spent: int = 0
    bucket: float | None = None
    bucket_at: float = 0.0


@dataclass(frozen=True)
class CreditAnswer:
    fingerprint: str
    event_id: str
    balance: int
    entry: str
    seq: int


@dataclass
class InMemoryBank:
    keys: Keys = field(default_factory=lambda: Keys(8))
    accounts: dict[str, Account] = field(default_factory=dict)
    pending: dict[str, Charge] = field(default_factory=dict)
    deadlines: dict[str, float] = field(default_factory=dict)  # charge id -> time.time()
    answers: dict[tuple[str, str], CreditAnswer] = field(default_factory=dict)
    unshipped: set[str] = field(default_factory=set)  # outbox entries the relay still holds
    decided: set[str] = field(default_factory=set)  # charges refunded (refund.lua's marker)
    refunds: list[tuple[str, int]] = field(default_factory=list)  # (charge id, tokens given)
    # Refunds lost to a rollback (`lose_refund`) as their sender starts waiting for them.
    refunds_to_lose: int = 0

    async def open(self, account: str, balance: int) -> None:
        self.accounts[account] = Account(balance)

    async def balance(self, account: str) -> int | None:
        held = self.accounts.get(account)
        return None if held is None else held.balance

    async def charge(
        self,
        account: str,
        price: int,
        limit: RateLimit | None,
        reason: str,
        request_id: str,
        refundable_after_s: float,
    ) -> tuple[Outcome, Charge | None]:
        held = self.accounts.get(account)
        if held is None:
            raise UnknownAccount(account)
        bucket = 0.0
        if limit is not None:
            now = time.monotonic()
            last = held.bucket_at if held.bucket is not None else now
            start = held.bucket if held.bucket is not None else float(limit.burst)
            bucket = min(limit.burst, start + max(0.0, now - last) * limit.rate)
            if bucket < 1:
                wait_ms = math.ceil((1 - bucket) * 1000 / limit.rate)
                return Outcome(Status.RATE_LIMITED, held.balance, retry_after_ms=wait_ms), None
        if held.balance < price:
            return Outcome(Status.INSUFFICIENT, held.balance), None
        held.balance -= price
        held.seq += 1
        held.calls += 1
        held.spent += price
        if limit is not None:
            held.bucket, held.bucket_at = bucket - 1, time.monotonic()
        charge = Charge(uuid.uuid4().hex, account, price, EPOCH, held.seq, reason, request_id)
        self.pending[charge.id] = charge
        self.deadlines[charge.id] = time.time() + refundable_after_s
        return Outcome(Status.APPLIED, held.balance, EPOCH, held.seq), charge

    async def hold(self, charge: Charge, seconds: float) -> bool:
        if charge.id not in self.pending:
            return False
        self.deadlines[charge.id] = time.time() + seconds
        return True

    async def refund(
        self, charge: Charge, undelivered: bool = False, overdue: bool = False
    ) -> Outcome:
        held = self.accounts[charge.account]
        if overdue and self.deadlines.get(charge.id, 0) > time.time():
            return Outcome(Status.NOT_DUE, held.balance)
        self.deadlines.pop(charge.id, None)
        was_pending = self.pending.pop(charge.id, None) is not None
        if not was_pending and (not undelivered or charge.id in self.decided):
            return Outcome(Status.NOTHING_TO_REFUND, held.balance)
        self.decided.add(charge.id)
        held.seq += 1
        entry = self._outbox_entry()
        if not was_pending:  # Redis lost the charge: the refund is the ledger's to decide
            self.refunds.append((charge.id, 0))
            return Outcome(Status.LEFT_TO_LEDGER, held.balance, EPOCH, held.seq, entry_id=entry)
        held.balance += charge.price
        held.calls -= 1
        held.spent -= charge.price
        self.refunds.append((charge.id, charge.price))
        return Outcome(Status.APPLIED, held.balance, EPOCH, held.seq, entry_id=entry)

    def _outbox_entry(self) -> str:
        entry = f"{time.time_ns()}-0"
        self.unshipped.add(entry)
        return entry

    async def refund_shipped(self, charge: Charge, entry_id: str, timeout_s: float) -> Shipping:
        if self.refunds_to_lose:
            self.refunds_to_lose -= 1
            self.lose_refund(charge, entry_id)
        return self._shipped(entry_id, charge.id in self.decided)

    def lose_refund(self, charge: Charge, entry_id: str) -> None:
        """Redis comes back from a snapshot taken after the charge and before its refund:
        the charge is pending (and past its deadline) again, the refund and its marker are
        gone."""
        held = self.accounts[charge.account]
        held.balance -= charge.price
        held.calls += 1
        held.spent += charge.price
        self.pending[charge.id] = charge
        self.deadlines[charge.id] = time.time()
        self.decided.discard(charge.id)
        self.unshipped.discard(entry_id)

    def lose_charge(self, charge: Charge) -> None:
        """Redis comes back from a snapshot taken before the charge (a failover)."""
        held = self.accounts[charge.account]
        held.balance += charge.price
        held.calls -= 1
        held.spent -= charge.price
        self.pending.pop(charge.id, None)
        self.deadlines.pop(charge.id, None)

    async def confirm(self, charge: Charge) -> None:
        self.pending.pop(charge.id, None)
        self.deadlines.pop(charge.id, None)

    async def overdue(self, shard: int, limit: int = 100) -> list[Charge]:
        now = time.time()
        due = sorted(
            (deadline, charge_id)
            for charge_id, deadline in self.deadlines.items()
            if deadline <= now and self.keys.shard_of(self.pending[charge_id].account) == shard
        )
        return [self.pending[charge_id] for _, charge_id in due[:limit]]

    async def holds(self, account: str, epoch: int, seq: int) -> bool:
        held = self.accounts.get(account)
        return not epoch or (held is not None and epoch == EPOCH and seq <= held.seq)

    def roll_back(self, account: str, to_seq: int, balance: int) -> None:
        """Redis comes back from a snapshot taken at `to_seq` (a failover): what came after
        is lost, idempotency records included."""
        held = self.accounts[account]
        held.seq, held.balance = to_seq, balance
        self.answers = {k: a for k, a in self.answers.items() if k[0] != account}

    async def live(self, account: str) -> LiveAccount:
        held = self.accounts.get(account)
        if held is None:
            raise UnknownAccount(account)
        return LiveAccount(held.balance, held.calls, held.spent)

    async def credit(
        self, account: str, amount: int, reason: str, idempotency_key: str, fingerprint: str
    ) -> Outcome:
        seen = self.answers.get((account, idempotency_key))
        if seen is not None:
            if seen.fingerprint != fingerprint:
                return Outcome(Status.CONFLICT, 0, event_id=seen.event_id, entry_id=seen.entry)
            return Outcome(
                Status.REPLAYED, seen.balance, EPOCH, seen.seq, 0, seen.event_id, seen.entry
            )
        held = self.accounts.get(account)
        if held is None:
            raise UnknownAccount(account)
        if held.balance + amount > MAX_BALANCE:
            return Outcome(Status.OVER_LIMIT, held.balance)
        held.balance += amount
        held.seq += 1
        event_id, entry = uuid.uuid4().hex, self._outbox_entry()
        self.answers[account, idempotency_key] = CreditAnswer(
            fingerprint, event_id, held.balance, entry, held.seq
        )
        return Outcome(Status.APPLIED, held.balance, EPOCH, held.seq, 0, event_id, entry)

    async def credit_shipped(
        self, account: str, idempotency_key: str, entry_id: str, timeout_s: float
    ) -> Shipping:
        return self._shipped(entry_id, (account, idempotency_key) in self.answers)

    def _shipped(self, entry_id: str, recorded: bool) -> Shipping:
        if entry_id in self.unshipped:
            return Shipping.WAITING  # nothing ships while a unit test waits
        return Shipping.SHIPPED if recorded else Shipping.LOST

    def ship(self) -> None:
        """What the relay does: every outbox entry goes to SQS."""
        self.unshipped.clear()

    def forget_credit(self, account: str, idempotency_key: str) -> None:
        """Redis loses a credit's idempotency record (a failover, an eviction)."""
        self.answers.pop((account, idempotency_key), None)


@dataclass
class InMemoryCreditLog:
    """`CreditLog`'s answers and the ledger's claims, by (account, idempotency key)."""

    answers: dict[tuple[str, str], MongoDoc] = field(default_factory=dict)
    claims: dict[tuple[str, str], MongoDoc] = field(default_factory=dict)

    async def first_answer(self, account: str, key: str) -> MongoDoc | None:
        answer = self.answers.get((account, key))
        if answer is None and (claim := self.claims.get((account, key))) is not None:
            answer = {**claim, "tokens": None}
        return answer

    async def record(self, account: str, key: str, answer: FirstAnswer) -> None:
        self.answers.setdefault((account, key), asdict(answer))

    def claimed(self, account: str, key: str, fingerprint: str, event_id: str) -> None:
        """The ledger applied this credit first (its claim), before any answer was kept."""
        self.claims.setdefault((account, key), {"fingerprint": fingerprint, "event_id": event_id})
