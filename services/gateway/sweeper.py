"""The sweeper: refunds charges whose meme was neither delivered nor refunded in time.

A gateway killed between a charge and its answer, or a refund that failed, leaves a
pending-charge record in Redis. The sweeper of each shard is the relay that holds the
shard's lease, so exactly one process sweeps a shard; the refund script is idempotent
either way. A record past its deadline is refunded under the same rule as any refund:
only if its debit is counted; and only if it is still past its deadline when refunded,
since its handler, frozen until then, may have held it to write the meme meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter

from services.gateway.usecases.refunds import Refunds, refund_durably
from shared.accounting.bank import Charge
from shared.aio import sleep_unless, unless_stopped

log = logging.getLogger(__name__)

SWEPT = Counter(
    "maas_charges_swept_total",
    "Overdue pending charges the sweeper decided, by outcome",
    ["outcome"],
)
SWEEP_FAILURES = Counter(
    "maas_sweep_failures_total",
    "Overdue charges or shards the sweeper could not refund this time (tried again next round)",
    ["step"],
)


class OverdueCharges(Refunds, Protocol):
    """What sweeping needs of the bank (`TokenBank`; the in-memory bank of the unit tests
    is proven alike by tests/contracts/)."""

    async def overdue(self, shard: int, limit: int = 100) -> list[Charge]: ...


class Sweeper:
    def __init__(
        self,
        bank: OverdueCharges,
        held_shards: Callable[[], list[int]],
        refund_within_s: float,
        every_s: float = 1.0,
    ) -> None:
        self.bank = bank
        self.held_shards = held_shards
        self.refund_within_s = refund_within_s
        self.every_s = every_s

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every `every_s` until `stop`. A round still going then is left at once:
        its refunds wait for a relay that stops too (each up to `refund_within_s`, shard
        after shard), and what it did not decide stays pending for the next sweeper."""
        while not stop.is_set():
            try:
                await unless_stopped(stop, self.sweep_once())
            except Exception:
                log.warning("sweep failed; retrying", exc_info=True)
            await sleep_unless(stop, self.every_s)

    async def sweep_once(self) -> int:
        """Refund the overdue charges of the held shards; returns how many were decided.

        A failure is one charge's or one shard's: it is logged and counted, and the rest
        of the round goes on (one charge that cannot be refunded must not keep every
        later charge and shard waiting, round after round). A shard's charges are
        refunded together, each refund waiting until SQS has it (refunds.py).
        """
        shards = self.held_shards()
        # Asked together, the shards' listings share one Redis round trip.
        listed = await asyncio.gather(
            *(self.bank.overdue(shard) for shard in shards), return_exceptions=True
        )
        decided = 0
        for shard, overdue in zip(shards, listed, strict=True):
            if isinstance(overdue, BaseException):
                log.warning(
                    "listing overdue charges failed", extra={"shard": shard}, exc_info=overdue
                )
                SWEEP_FAILURES.labels("list").inc()
                continue
            outcomes = await asyncio.gather(*(self._refund(shard, c) for c in overdue))
            decided += sum(outcomes)
        return decided

    async def _refund(self, shard: int, charge: Charge) -> bool:
        try:
            outcome = await refund_durably(
                self.bank, charge, sweeper=True, within_s=self.refund_within_s
            )
        except Exception:
            log.warning(
                "refunding an overdue charge failed",
                extra={"charge": charge.id, "account": charge.account, "shard": shard},
                exc_info=True,
            )
            SWEEP_FAILURES.labels("refund").inc()
            return False
        decision = outcome.status.name.lower()
        SWEPT.labels(decision).inc()
        log.info(
            "swept an overdue charge",
            extra={
                "account": charge.account,
                "charge": str(charge.ref),
                "tokens": charge.price,
                "request_id": charge.request_id,
                "outcome": decision,
            },
        )
        return True
