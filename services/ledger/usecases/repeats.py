"""Which credits and refunds count: one credit per idempotency key, one refund per
counted charge.

A Redis that lost data (a failover to a replica behind, an eviction) lets the gateway
issue a credit or a refund again: billing retries a key whose record was lost, the
sweeper or a handler refunds a charge whose refund was lost. The ledger's claims in
MongoDB outlive Redis, so the repeat keeps its place in the account's sequence but
counts nothing (it is voided). A refund also counts only where its charge does: a
refund of a charge that never reached MongoDB gives back what was never taken.
The message handler judges the events it applies, and settle the ones it adopts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.apply import Position, Voided
from shared.accounting.credits import FirstCredit
from shared.accounting.events import Event


@dataclass(slots=True)
class Verdicts:
    voided: dict[str, Voided] = field(default_factory=dict)  # by event id
    waiting: dict[str, str] = field(default_factory=dict)  # account -> why it must wait
    repeated_credits: list[tuple[Event, FirstCredit]] = field(default_factory=list)


async def judge(
    store: LedgerStore, events: list[Event], applied: dict[str, Position], alongside: set[str]
) -> Verdicts:
    """Judge the credits and refunds among `events`, which are about to count.

    `applied`: each account's position in MongoDB before these events; `alongside`: the
    ids of events counted in the same step (a refund's charge may be one of them).
    """
    verdicts = Verdicts()
    credits = [e for e in events if e.type == "credit"]
    firsts = await store.credits.claim(credits) if credits else {}
    for credit in credits:
        if first := firsts.get(credit.id):
            verdicts.voided[credit.id] = Voided(first.event_id, f"repeats credit {first.event_id}")
            verdicts.repeated_credits.append((credit, first))
    refunds = [e for e in events if e.type == "refund" and e.charge]
    if refunds:
        await _judge_refunds(store, refunds, applied, alongside, verdicts)
    return verdicts


async def _judge_refunds(
    store: LedgerStore,
    refunds: list[Event],
    applied: dict[str, Position],
    alongside: set[str],
    verdicts: Verdicts,
) -> None:
    unresolved = [r for r in refunds if (ref := r.charge_ref) and ref.id not in alongside]
    standing = await store.charges_of(unresolved)
    counted = []
    for refund in refunds:
        charge = refund.charge_ref
        assert charge is not None
        holder, record = standing.get(refund.id, (None, None))
        if charge.id in alongside or (
            holder is not None
            and holder.event_id == charge.id
            and applied[refund.account].includes(charge.epoch, charge.seq)
        ):
            counted.append(refund)
        elif record is not None and record.get("adopted_at"):
            counted.append(refund)  # settle adopted the charge at its reused position
        elif record is not None:
            verdicts.waiting[refund.account] = (
                f"refund {refund.id} gives back charge {charge.id}, which holds a reused "
                f"position: run `maas ledger settle --account {refund.account}` once idle"
            )
        else:
            verdicts.voided[refund.id] = Voided(
                charge.id, f"its charge {charge.id} never reached MongoDB: nothing to give back"
            )
    firsts = await store.claim_refunds([r for r in counted if r.account not in verdicts.waiting])
    for refund_id, first in firsts.items():
        verdicts.voided[refund_id] = Voided(first, f"repeats refund {first} of the same charge")
