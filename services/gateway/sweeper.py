"""The sweeper: refunds charges whose meme was neither delivered nor refunded in time.

A gateway killed between a charge and its answer, or a refund that failed, leaves a
pending-charge record in Redis. The sweeper of each shard is the relay that holds the
shard's lease, so exactly one process sweeps a shard; the refund script is idempotent
either way. A record past its deadline is refunded under the same rule as any refund:
only if its debit is counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import Counter

from shared.accounting.bank import Status, TokenBank
from shared.aio import sleep_unless

log = logging.getLogger(__name__)

SWEPT = Counter(
    "maas_charges_swept_total",
    "Overdue pending charges the sweeper settled, by outcome",
    ["outcome"],
)


class Sweeper:
    def __init__(
        self, bank: TokenBank, held_shards: Callable[[], list[int]], every_s: float = 1.0
    ) -> None:
        self.bank = bank
        self.held_shards = held_shards
        self.every_s = every_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.warning("sweep failed; retrying", exc_info=True)
            await sleep_unless(stop, self.every_s)

    async def sweep_once(self) -> int:
        """Refund the overdue charges of the held shards; returns how many were settled."""
        settled = 0
        for shard in self.held_shards():
            for charge in await self.bank.overdue(shard):
                outcome = await self.bank.refund(charge)
                SWEPT.labels(Status(outcome.status).name.lower()).inc()
                settled += 1
        return settled
