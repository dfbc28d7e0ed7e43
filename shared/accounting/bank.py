"""Token balances in Redis: charge, refund, credit and hydration, each one round trip.

Every change of a balance is a Lua script that also assigns the account's next seq
and appends the event to the account's outbox shard, so the balance and the event
that the ledger will apply can never disagree.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase
from redis.exceptions import RedisError

from shared import tracing
from shared.accounting.accounts import AccountStore, is_book
from shared.accounting.credits import FirstCredit
from shared.accounting.events import ChargeRef, Event
from shared.accounting.shapes import AccountField
from shared.contract import MAX_BALANCE
from shared.keys import Keys
from shared.pipelining import AutoPipeline
from shared.settings import RateLimit, Settings
from shared.stores import MongoDoc, Redis, lua_script


class Status(IntEnum):
    APPLIED = 0
    NOT_HYDRATED = 1
    INSUFFICIENT = 2
    RATE_LIMITED = 3
    REPLAYED = 4
    CONFLICT = 5
    OVER_LIMIT = 6
    NOTHING_TO_REFUND = 7
    LEFT_TO_LEDGER = 9
    NOT_DUE = 10  # a sweeper's refund of a charge held for delivery since it was listed
    IN_TRANSIT = 11  # the region's slice is empty, the account's tokens are in another


class Shipping(Enum):
    """Where an event Redis acknowledged stands once a caller waited for it."""

    SHIPPED = "shipped"  # SQS accepted it: durable beyond Redis
    WAITING = "waiting"  # still in the outbox when the wait ran out
    LOST = "lost"  # gone from the outbox together with its record: Redis lost it


class UnknownAccount(Exception):
    pass


class NotHydrated(Exception):
    """Redis lost the account again between its hydration and the retry."""


class AccountBusy(Exception):
    """Charges kept moving the account while it was being settled."""


SETTLE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Settlement:
    """An account re-loaded from MongoDB: what Redis held before, and the new epoch."""

    before_balance: int | None
    before_epoch: int | None
    before_seq: int | None
    balance: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    balance: int
    epoch: int = 0
    seq: int = 0
    retry_after_ms: int = 0
    event_id: str = ""
    entry_id: str = ""


@dataclass(frozen=True, slots=True)
class Charge:
    """A debit whose meme is not delivered yet: what its refund or its confirmation needs."""

    id: str
    account: str
    price: int
    epoch: int
    seq: int
    reason: str
    request_id: str

    @classmethod
    def decode(cls, charge_id: str, raw: str) -> Charge:
        """A pending record, as charge.lua writes it."""
        account, price, epoch, seq, reason, request_id = orjson.loads(raw)
        return cls(charge_id, account, int(price), int(epoch), int(seq), reason, request_id)

    @property
    def ref(self) -> ChargeRef:
        return ChargeRef(self.epoch, self.seq, self.id)


@dataclass(frozen=True, slots=True)
class LiveAccount:
    balance: int
    calls: int
    tokens_spent: int


SHIPPING_POLL_S = 0.02
HURRY_TTL_MS = 1000
# Longer than SQS keeps any message (14 days), so a late redelivery still finds the mark.
DECISION_TTL_S = 15 * 24 * 3600
# A refund in the charge's own epoch is marked too, for as long as a handler could still
# be writing its answer and refund it again after an epoch change (the ingress closes an
# idle client within minutes); short, since refunds are frequent.
REFUNDED_TTL_S = 3600


def new_event_id() -> str:
    return uuid.uuid4().hex


class TokenBank:
    def __init__(
        self, redis: Redis, keys: Keys, accounts: AccountStore, idempotency_ttl_s: int
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.accounts = accounts
        self.idempotency_ttl_s = idempotency_ttl_s
        self.pipelined = scripts = AutoPipeline(redis)
        self._charge = scripts.script(lua_script("charge"))
        self._confirm = scripts.script(lua_script("confirm"))
        self._hold = scripts.script(lua_script("hold"))
        self._refund = scripts.script(lua_script("refund"))
        self._credit = scripts.script(lua_script("credit"))
        self._hydrate = scripts.script(lua_script("hydrate"))
        self._settle = scripts.script(lua_script("settle"))
        self._revoke = scripts.script(lua_script("revoke"))
        self._overdue = scripts.script(lua_script("overdue"))
        self._give_back = scripts.script(lua_script("give_back"))

    @classmethod
    def for_settings(
        cls, settings: Settings, redis: Redis, db: AsyncDatabase[MongoDoc]
    ) -> TokenBank:
        """The bank as every process builds it: the settings' shards and idempotency TTL."""
        return cls(redis, Keys(settings.shards), AccountStore(db), settings.idempotency_ttl_s)

    async def charge(
        self,
        account: str,
        price: int,
        limit: RateLimit | None,
        reason: str,
        request_id: str,
        refundable_after_s: float,
    ) -> tuple[Outcome, Charge | None]:
        """Debit a meme; the charge stays pending until confirmed or refunded.

        A pending charge older than `refundable_after_s` is the sweeper's to refund.
        """
        shard = self.keys.shard_of(account)
        keys = [
            self.keys.account(account),
            self.keys.outbox(shard),
            self.keys.pending(shard),
            self.keys.deadlines(shard),
        ]
        rate, burst = (limit.rate, limit.burst) if limit else (0, 1)
        charge_id = new_event_id()
        args = [
            account, price, rate, burst, charge_id, reason, request_id,
            int(refundable_after_s * 1000), tracing.traceparent(),
        ]  # fmt: skip
        raw = await self._hydrated(account, self._charge, keys, args)
        outcome = Outcome(Status(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]), int(raw[4]))
        if outcome.status != Status.APPLIED:
            return outcome, None
        charge = Charge(charge_id, account, price, outcome.epoch, outcome.seq, reason, request_id)
        return outcome, charge

    async def confirm(self, charge: Charge) -> None:
        """The meme was delivered: the charge is final."""
        shard = self.keys.shard_of(charge.account)
        await self._confirm(
            keys=[self.keys.pending(shard), self.keys.deadlines(shard)], args=[charge.id]
        )

    async def hold(self, charge: Charge, seconds: float) -> bool:
        """About to write the meme: keep the sweeper off the charge for `seconds`, or
        False if it refunded the charge already (the handler was frozen past its deadline)."""
        shard = self.keys.shard_of(charge.account)
        held = await self._hold(
            keys=[self.keys.pending(shard), self.keys.deadlines(shard)],
            args=[charge.id, max(1, int(seconds * 1000))],
        )
        return bool(held)

    async def refund(
        self, charge: Charge, undelivered: bool = False, overdue: bool = False
    ) -> Outcome:
        """Give a charge back once, and only if its debit is counted (see refund.lua).

        `undelivered`: the caller knows the meme was not delivered (the handler itself,
        not a sweeper that only saw a deadline pass), so a charge Redis lost is still
        refunded where the ledger counted it (`Status.LEFT_TO_LEDGER`).
        `overdue`: only if the charge is still past its deadline (the sweeper: the handler
        may have held it for delivery since), else `Status.NOT_DUE`.
        """
        shard = self.keys.shard_of(charge.account)
        keys = [
            self.keys.account(charge.account),
            self.keys.outbox(shard),
            self.keys.pending(shard),
            self.keys.deadlines(shard),
            self.keys.refund_decided(charge.account, charge.id),
        ]
        args = [
            charge.account, charge.id, charge.price, charge.epoch, charge.seq, new_event_id(),
            charge.reason, charge.request_id, DECISION_TTL_S, REFUNDED_TTL_S, str(charge.ref),
            "1" if undelivered else "0", "1" if overdue else "0", tracing.traceparent(),
        ]  # fmt: skip
        raw = await self._hydrated(charge.account, self._refund, keys, args)
        entry_id = str(raw[4]) if len(raw) > 4 else ""
        return Outcome(Status(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]), entry_id=entry_id)

    async def overdue(self, shard: int, limit: int = 100) -> list[Charge]:
        """Pending charges of a shard past their deadline, oldest first.

        One script call (Redis's clock and the range together), so the sweeper's look
        at every shard it holds, each second, rides one auto-pipelined write."""
        ids = [str(i) for i in await self._overdue(keys=[self.keys.deadlines(shard)], args=[limit])]
        if not ids:
            return []
        raws = [
            None if raw is None else str(raw)
            for raw in await self.redis.hmget(self.keys.pending(shard), ids)
        ]
        gone = [charge_id for charge_id, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            await self.redis.zrem(self.keys.deadlines(shard), *gone)
        return [Charge.decode(i, raw) for i, raw in zip(ids, raws, strict=True) if raw is not None]

    async def credit(
        self, account: str, amount: int, reason: str, idempotency_key: str, fingerprint: str
    ) -> Outcome:
        """Add purchased tokens once per idempotency key; repeats get the first answer."""
        keys = [
            self.keys.account(account),
            self.keys.outbox_of(account),
            self.keys.idempotency(account, idempotency_key),
        ]
        args = [
            account, amount, new_event_id(), reason, idempotency_key, fingerprint,
            self.idempotency_ttl_s, MAX_BALANCE, tracing.traceparent(),
        ]  # fmt: skip
        raw = await self._hydrated(account, self._credit, keys, args)
        return Outcome(
            Status(raw[0]),
            int(raw[1]),
            int(raw[2]),
            int(raw[3]),
            event_id=str(raw[4]),
            entry_id=str(raw[5]),
        )

    async def give_back(self, book: str, tokens: int, reason: str) -> Outcome:
        """Lower a region's slice by `tokens` and append the return that moves them to
        the account's pool (`Status.INSUFFICIENT`: the slice holds fewer; nothing changed)."""
        keys = [self.keys.account(book), self.keys.outbox_of(book)]
        args = [book, tokens, new_event_id(), reason, tracing.traceparent()]
        raw = await self._hydrated(book, self._give_back, keys, args)
        return Outcome(Status(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]))

    async def credit_shipped(
        self, account: str, idempotency_key: str, entry_id: str, timeout_s: float
    ) -> Shipping:
        """Wait until the relay has handed a credit's event to SQS, where it is durable."""
        record = self.keys.idempotency(account, idempotency_key)
        return await self._shipped(account, record, entry_id, timeout_s)

    async def refund_shipped(self, charge: Charge, entry_id: str, timeout_s: float) -> Shipping:
        """Wait until the relay has handed a refund's event to SQS, where it is durable."""
        record = self.keys.refund_decided(charge.account, charge.id)
        return await self._shipped(charge.account, record, entry_id, timeout_s)

    async def _shipped(
        self, account: str, record: str, entry_id: str, timeout_s: float
    ) -> Shipping:
        """Shipped means: the outbox entry is gone while the record the same script wrote
        is still there; both gone is Redis losing its data (a restart from an older
        snapshot, a failover to a replica behind), and the event with it. Polls, since
        the relay may be another process; asks that relay not to linger over the shard.
        A poll that fails (Redis restarting) is tried again until the wait runs out.
        """
        shard = self.keys.shard_of(account)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.xrange(self.keys.outbox(shard), entry_id, entry_id, count=1)
                    pipe.exists(record)
                    pipe.xadd(self.keys.hurry(shard), {"w": 1}, maxlen=1, approximate=False)
                    pipe.pexpire(self.keys.hurry(shard), HURRY_TTL_MS)
                    unshipped, recorded, *_ = await pipe.execute()
            except (RedisError, OSError):
                unshipped, recorded = True, True
            if not unshipped:
                return Shipping.SHIPPED if recorded else Shipping.LOST
            if time.monotonic() > deadline:
                return Shipping.WAITING
            await asyncio.sleep(SHIPPING_POLL_S)

    async def holds(self, account: str, epoch: int, seq: int) -> bool:
        """Whether Redis's balance includes the account's event at (epoch, seq): it is in
        the current numbering and not past it, or in the balance the account was loaded
        with. Unknown positions (0) count as held; an account Redis lacks is loaded first.
        """
        if not epoch:
            return True
        fields = [AccountField.EPOCH, AccountField.SEQ, AccountField.BASE_EPOCH,
                  AccountField.BASE_SEQ]  # fmt: skip
        state = await self.redis.hmget(self.keys.account(account), fields)
        if state[0] is None:
            await self.hydrate(account)
            state = await self.redis.hmget(self.keys.account(account), fields)
        live_epoch, live_seq, base_epoch, base_seq = (int(v or 0) for v in state)
        if epoch == live_epoch:
            return seq <= live_seq
        return epoch < base_epoch or (epoch == base_epoch and seq <= base_seq)

    async def balance(self, account: str) -> int | None:
        raw = await self.redis.hget(self.keys.account(account), AccountField.BALANCE)
        return None if raw is None else int(raw)

    async def live(self, account: str) -> LiveAccount:
        """The live balance and usage, hydrating the account first if Redis lacks it."""
        key = self.keys.account(account)
        fields = [AccountField.BALANCE, AccountField.CALLS, AccountField.SPENT]
        balance, calls, spent = await self.pipelined.call("HMGET", key, *fields)
        if balance is None:
            await self.hydrate(account)
            balance, calls, spent = await self.pipelined.call("HMGET", key, *fields)
        if balance is None:
            raise UnknownAccount(account)
        return LiveAccount(int(balance), int(calls or 0), int(spent or 0))

    async def hydrate(self, account: str) -> None:
        """Load the account from MongoDB into Redis under a new epoch (see ARCHITECTURE).

        A region's book loaded again, its Redis lost, starts empty instead: its first
        event closes what the book holds as spent, after everything the lost Redis had
        shipped (what it spent and had not shipped is in there too, and no one can know
        how much), so the region never spends a token twice (docs/multi-region.md).
        """
        hydration = await self.accounts.next_epoch(account)
        if hydration is None:
            raise UnknownAccount(account)
        keys, args = [self.keys.account(account)], list[int | str](hydration.script_args())
        if is_book(account) and hydration.epoch > 1:
            keys.append(self.keys.outbox_of(account))
            args = [0, *args[1:], new_event_id(), account]
        await self._hydrate(keys=keys, args=args)

    async def settle(self, account: str) -> Settlement:
        """Replace the live balance with MongoDB's under a new epoch, atomically with charges.

        For an account whose lost events (purged dead letters) left Redis ahead of MongoDB
        for good: its next events start the new epoch, which the ledger applies.
        """
        key = self.keys.account(account)
        for _ in range(SETTLE_ATTEMPTS):
            epoch, seq = await self.redis.hmget(key, [AccountField.EPOCH, AccountField.SEQ])
            hydration = await self.accounts.next_epoch(account)
            if hydration is None:
                raise UnknownAccount(account)
            settled, before = await self._settle(
                keys=[key],
                args=[epoch or "", seq or "", *hydration.script_args()],
            )
            if settled:
                return Settlement(
                    int(before) if before else None,
                    int(epoch) if epoch else None,
                    int(seq) if seq else None,
                    hydration.balance,
                    hydration.epoch,
                )
        raise AccountBusy(account)

    async def revoke_credits(self, repeats: list[tuple[Event, FirstCredit]]) -> int:
        """Take repeated credits (the ledger voided them) out of the live balance, once
        each, where Redis holds the first credit too (see revoke.lua).

        The balance may go below zero if the tokens were spent meanwhile: that is the
        debt the repeat ran up, and charges answer 402 until a credit covers it.
        Returns how many were taken back.
        """
        revoked = 0
        for event, first in repeats:
            keys = [
                self.keys.account(event.account),
                self.keys.credit_revoked(event.account, event.id),
            ]
            args = [event.epoch, event.amount, DECISION_TTL_S, event.seq, first.epoch, first.seq]
            revoked += await self._revoke(keys=keys, args=args) == 1
        return revoked

    async def _hydrated(self, account: str, script: Any, keys: list[str], args: list[Any]) -> Any:
        raw = await script(keys=keys, args=args)
        if raw[0] == Status.NOT_HYDRATED:
            await self.hydrate(account)
            raw = await script(keys=keys, args=args)
            if raw[0] == Status.NOT_HYDRATED:
                raise NotHydrated(account)
        return raw
