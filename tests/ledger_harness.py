"""A ledger worker's parts on the shared servers, for tests that drive it by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.messages import Received
from services.ledger.domain.reconcile import BalanceAt, Status, compare
from services.ledger.usecases.apply_messages import MessageHandler
from services.ledger.usecases.reconcile import POSITION_FIELDS, HeldEvents, held_for_settle
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import TokenBank
from shared.accounting.events import Batch, Event


@dataclass(frozen=True, slots=True)
class Ledger:
    store: LedgerStore
    accounts: AccountStore
    bank: TokenBank

    def worker(self, max_receive_count: int = 3) -> MessageHandler:
        return MessageHandler(self.store, max_receive_count, self.bank)

    async def books(self, account: str) -> tuple[int | None, int, Status]:
        """Redis's balance, MongoDB's, and reconcile's verdict once the pipeline is idle
        (these tests hand every event to the worker themselves)."""
        keys, redis = self.bank.keys, self.bank.redis
        live = await redis.hmget(keys.account(account), POSITION_FIELDS)
        stored = await self.accounts.get(account)
        assert stored is not None
        mongo = BalanceAt(stored["balance"], stored["epoch"], stored["seq"])
        held = (await held_for_settle(self.store, account)).get(account, HeldEvents())
        redis_at = None if live[0] is None else BalanceAt(*(int(v or 0) for v in live))
        row = compare(account, redis_at, mongo, 0, True, *held.verdict_args)
        return (redis_at.balance if redis_at else None), mongo.balance, row.status


def message(events: list[Event], receive_count: int = 1) -> Received:
    """The events packed as the relay packs them, as one received SQS message."""
    body = Batch(0, events).encode()
    return Received(uuid.uuid4().hex, body, receive_count, group_id="s0", sequence="1")
