"""Settle an account: Redis adopts MongoDB's balance under a new epoch, on the record.

After dead letters were purged, their events exist in Redis's balance but will never
reach MongoDB, and the account's later events gap behind them forever. After Redis
lost events it had shipped and numbered new ones the same (reused positions), MongoDB
holds the lost ones and Redis the new ones. Settling first adopts the reused-position
events into MongoDB by kind: debits count (clients got their memes); a credit counts
through the same claim as every credit, so a repeat of a key is voided; a refund counts
only if its charge counts and has no refund yet (see `repeats`); an event of a region's
book whose epoch a close ended counts nothing (the close took it as spent). It then
re-loads the account from MongoDB (see `TokenBank.settle`) and writes who did it, why,
and what changed into the account's journal.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.apply import Position, Voided
from services.ledger.usecases.repeats import judge
from shared.accounting.bank import Settlement, TokenBank
from shared.accounting.events import Event, event_from_dict


@dataclass(frozen=True, slots=True)
class Settled:
    settlement: Settlement
    mongo_applied: dict[str, object]  # MongoDB's applied position the balance was taken at
    adopted: list[tuple[Event, Voided | None]]  # reused-position events, judged by kind


async def settle(
    bank: TokenBank, store: LedgerStore, account: str, reason: str, by: str
) -> Settled:
    adopted = await adopt_reuses(store, account)
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
                    **({"void_reason": voided.reason} if voided else {}),
                }
                for e, voided in adopted
            ],
        },
    )
    return Settled(settlement, applied, adopted)


def charge_may_still_come(event: Event, applied: Position) -> bool:
    """A refund Redis numbered before its own charge (it renumbered after a rollback, and
    the handler's refund of a charge it lost took an earlier position), whose charge
    MongoDB has not reached: if the charge is a dead letter still to redrive, the refund
    is neither adopted nor voided yet (if the rollback lost it unshipped, it is voided)."""
    charge = event.charge_ref if event.type == "refund" else None
    return (
        charge is not None
        and (charge.epoch, charge.seq) > (event.epoch, event.seq)
        and not applied.includes(charge.epoch, charge.seq)
    )


async def adopt_reuses(store: LedgerStore, account: str) -> list[tuple[Event, Voided | None]]:
    """Judge and adopt the account's reused-position events, debits first (a refund
    among them may give one of them back), each exactly once."""
    reuses = [(doc, event_from_dict(doc["event"])) for doc in await store.unsettled_reuses(account)]
    reuses.sort(key=lambda found: found[1].type != "debit")
    applied = await store.positions([account]) or {account: Position(0, 0)}
    adopted: list[tuple[Event, Voided | None]] = []
    for doc, event in reuses:
        if close := await store.close_after(account, event.epoch):
            # A lost Redis's event: the close counted it with the rest of that slice,
            # whatever it was (a debit spent it; a credit or refund went into the slice).
            counted_by_close = Voided(close, "counted by the close of the lost Redis's slice")
            await store.adopt(account, doc, counted_by_close)
            adopted.append((event, counted_by_close))
            continue
        charge = event.charge_ref
        if (
            charge is not None
            and charge_may_still_come(event, applied[account])
            and await store.dead_letter_holds(account, charge.id)
        ):
            continue  # judged by a later settle, once the redrive applied its charge
        verdicts = await judge(store, [event], applied, {e.id for e, _ in adopted})
        if account in verdicts.waiting:
            continue  # its charge is not adopted yet: the next settle takes it
        voided = verdicts.voided.get(event.id)
        await store.adopt(account, doc, voided)
        adopted.append((event, voided))
    return adopted
