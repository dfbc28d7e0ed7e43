"""Settle an account: Redis adopts MongoDB's balance under a new epoch, on the record.

After dead letters were purged, their events exist in Redis's balance but will never
reach MongoDB, and the account's later events gap behind them forever. Settling
re-loads the account from MongoDB (see `TokenBank.settle`) and writes who did it, why,
and what changed into the account's journal.
"""

from __future__ import annotations

from services.gateway.adapters.tokens import Settlement, TokenBank
from services.ledger.adapters.mongo import LedgerStore


async def settle(
    bank: TokenBank, store: LedgerStore, account: str, reason: str, by: str
) -> tuple[Settlement, dict[str, object]]:
    """Returns the settlement and MongoDB's applied position it was taken at."""
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
        },
    )
    return settlement, applied
