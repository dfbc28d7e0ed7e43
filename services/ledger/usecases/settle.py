"""Settle an account: Redis adopts MongoDB's balance under a new epoch, on the record.

After dead letters were purged, their events exist in Redis's balance but will never
reach MongoDB, and the account's later events gap behind them forever. After Redis
lost events it had shipped and numbered new ones the same (reused positions), MongoDB
holds the lost ones and Redis the new ones. Settling first adopts the reused-position
events into MongoDB (they were real charges), then re-loads the account from MongoDB
(see `TokenBank.settle`) and writes who did it, why, and what changed into the
account's journal.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.ledger.adapters.mongo import LedgerStore
from shared.accounting.bank import Settlement, TokenBank
from shared.accounting.events import Event


@dataclass(frozen=True, slots=True)
class Settled:
    settlement: Settlement
    mongo_applied: dict[str, object]  # MongoDB's applied position the balance was taken at
    adopted: list[Event]  # reused-position events counted in MongoDB first


async def settle(
    bank: TokenBank, store: LedgerStore, account: str, reason: str, by: str
) -> Settled:
    adopted = await store.adopt_reuses(account)
    settlement = await bank.settle(account)
    stored = await store.accounts.find_one({"_id": account}, {"epoch": 1, "seq": 1})
    applied = {"epoch": stored["epoch"], "seq": stored["seq"]} if stored else {}
    await store.journal_settlement(
        account,
        {
            "epoch": settlement.epoch,
            "reason": reason,
            "by": by,
            "balance": settlement.balance,
            "redis_before": {
                "balance": settlement.before_balance,
                "epoch": settlement.before_epoch,
                "seq": settlement.before_seq,
            },
            "mongo_applied": applied,
            "adopted": [
                {
                    "event_id": e.id,
                    "type": e.type,
                    "amount": e.amount,
                    "epoch": e.epoch,
                    "seq": e.seq,
                }
                for e in adopted
            ],
        },
    )
    return Settled(settlement, applied, adopted)
