"""An in-memory bank for the meme use case's unit tests.

It keeps what the charge, refund and confirm scripts keep (balance, seq, pending
charges, a token bucket) in dictionaries. `tests/contracts/test_meme_charges.py` runs
one suite against it and against `TokenBank` on real Redis and the store, so a unit test
that passes here would pass there.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

from shared.accounting.bank import Charge, Outcome, Status, UnknownAccount
from shared.keys import Keys
from shared.settings import RateLimit

EPOCH = 1  # the first hydration's epoch


@dataclass
class Account:
    balance: int
    seq: int = 0
    bucket: float | None = None
    bucket_at: float = 0.0


@dataclass
class InMemoryBank:
    keys: Keys = field(default_factory=lambda: Keys(8))
    accounts: dict[str, Account] = field(default_factory=dict)
    pending: dict[str, Charge] = field(default_factory=dict)
    deadlines: dict[str, float] = field(default_factory=dict)  # charge id -> time.time()

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
        if limit is not None:
            held.bucket, held.bucket_at = bucket - 1, time.monotonic()
        charge = Charge(uuid.uuid4().hex, account, price, EPOCH, held.seq, reason, request_id)
        self.pending[charge.id] = charge
        self.deadlines[charge.id] = time.time() + refundable_after_s
        return Outcome(Status.APPLIED, held.balance, EPOCH, held.seq), charge

    async def refund(self, charge: Charge) -> Outcome:
        held = self.accounts[charge.account]
        self.deadlines.pop(charge.id, None)
        if self.pending.pop(charge.id, None) is None:
            return Outcome(Status.NOTHING_TO_REFUND, held.balance)
        held.balance += charge.price
        held.seq += 1
        return Outcome(Status.APPLIED, held.balance, EPOCH, held.seq)

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
