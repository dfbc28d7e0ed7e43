"""Refunds that outlive Redis: a refund counts for the client once SQS has it.

Redis acknowledges a refund before the relay ships it. If Redis then comes back from an
older snapshot (a failover to a replica behind), the refund is gone while its charge may
already be in MongoDB: the client would pay for a meme it never got. So whoever refunds
waits until the relay has shipped the refund, as a credit is answered only once shipped;
if Redis lost it meanwhile, the refund is issued again. The charge was decided refunded
(its handler failed, or the sweeper found it overdue and not held), so the new refund
says so: Redis gives the tokens back if the snapshot still holds the charge, and
otherwise leaves the refund to the ledger, which grants it only where MongoDB counts the
debit (refund.lua).

A refund Redis cannot take right now (it is restarting, or failing over) is tried again
for a while: if Redis comes back from a snapshot taken before the charge, no pending
record is left for the sweeper to find, and only this caller knows the meme failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from prometheus_client import Counter

from shared.accounting.bank import Charge, Outcome, Shipping, Status

REISSUES = 3
RETRY_FIRST_S = 0.05
RETRY_LAST_S = 0.5

REFUNDS_REISSUED = Counter(
    "maas_refunds_reissued_total",
    "Refunds Redis lost before SQS had them (a restart from an older snapshot), issued again",
)

log = logging.getLogger(__name__)


class Refunds(Protocol):
    """What a durable refund needs of the bank (`TokenBank`; the in-memory bank of the
    unit tests is proven alike by tests/contracts/)."""

    async def refund(
        self, charge: Charge, undelivered: bool = False, overdue: bool = False
    ) -> Outcome: ...

    async def refund_shipped(self, charge: Charge, entry_id: str, timeout_s: float) -> Shipping: ...


def log_refund(charge: Charge, reason: str, outcome: Outcome) -> None:
    """The operator's line for a refund a handler or a drain decided (docs/logs.md)."""
    log.info(
        "refunded",
        extra={
            "account": charge.account,
            "charge": str(charge.ref),
            "tokens": charge.price,
            "reason": reason,
            "outcome": outcome.status.name.lower(),
        },
    )


async def refund_durably(
    bank: Refunds, charge: Charge, *, sweeper: bool, within_s: float
) -> Outcome:
    """Refund `charge` and return once SQS has the refund, or the wait ran out.

    `sweeper`: the refund of an overdue charge (only if still overdue), not a handler's
    refund of a meme it knows failed. Redis out of reach is waited out for `within_s`
    (then the error is raised: the pending record is the sweeper's), and so is the
    shipping; a shipping wait that runs out (SQS out of reach for longer) leaves the
    refund in the outbox, where it is as safe as anything Redis holds.
    """
    outcome = await _refund(bank, charge, not sweeper, sweeper, within_s)
    for _ in range(REISSUES):
        if outcome.status not in (Status.APPLIED, Status.LEFT_TO_LEDGER):
            return outcome
        if await bank.refund_shipped(charge, outcome.entry_id, within_s) != Shipping.LOST:
            return outcome
        REFUNDS_REISSUED.inc()
        log.warning(
            "Redis lost a refund before SQS had it; refunding again",
            extra={"charge": charge.id, "account": charge.account, "tokens": charge.price},
        )
        outcome = await _refund(bank, charge, True, sweeper, within_s)
    return outcome


async def _refund(
    bank: Refunds, charge: Charge, undelivered: bool, overdue: bool, within_s: float
) -> Outcome:
    """One refund, tried again while Redis is out of reach (a second try of a refund
    that did land is answered `NOTHING_TO_REFUND`: refund.lua decides a charge once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    pause = RETRY_FIRST_S
    while True:
        try:
            return await bank.refund(charge, undelivered=undelivered, overdue=overdue)
        except Exception:
            if loop.time() + pause >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(2 * pause, RETRY_LAST_S)
