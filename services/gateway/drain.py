"""Graceful shutdown of the meme path: finish what is in flight, refund what cannot finish.

On SIGTERM aiohttp stops accepting connections and runs `on_shutdown`, which opens a
drain window. Memes in flight may finish within it; when it closes, the ones still
waiting are answered 503 and refunded. Whatever charge of this process is still
pending after that (a handler cancelled mid-refund) is refunded on the way out; the
refund script makes a second refund of the same charge a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterator
from typing import TypeVar

from services.gateway.usecases.refunds import log_refund
from shared.accounting.bank import Charge, TokenBank
from shared.aio import Stopped, until_stopped
from shared.errors import ApiError

T = TypeVar("T")

log = logging.getLogger(__name__)


class Drain:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.closed = asyncio.Event()
        self._in_flight: dict[str, Charge] = {}

    def begin(self) -> None:
        """Stop waiting for memes `window_s` from now."""
        log.info(
            "drain begun", extra={"window_s": self.window_s, "in_flight": len(self._in_flight)}
        )
        asyncio.get_running_loop().call_later(self.window_s, self.closed.set)

    @contextlib.contextmanager
    def holding(self, charge: Charge) -> Iterator[None]:
        """Track a charge of this process while its meme is being made and answered."""
        self._in_flight[charge.id] = charge
        try:
            yield
        finally:
            self._in_flight.pop(charge.id, None)

    async def unless_closed(self, work: Awaitable[T]) -> T:
        """`work`'s result, or a 503 once the drain window has closed."""
        try:
            return await until_stopped(self.closed, work)
        except Stopped:
            raise ApiError(
                "shutting_down",
                "this gateway is shutting down; retry (nothing was charged)",
                headers={"Retry-After": "1"},
            ) from None

    async def refund_leftovers(self, bank: TokenBank) -> None:
        """Refund the charges whose handlers ended without confirming or refunding them."""
        leftovers, refunded = list(self._in_flight.values()), 0
        for charge in leftovers:
            try:
                outcome = await bank.refund(charge)
            except Exception:
                log.warning("refund on shutdown failed; the sweeper will refund it",
                            exc_info=True, extra={"charge": charge.id})  # fmt: skip
                continue
            log_refund(charge, "drain_window", outcome)
            refunded += 1
        log.info("drain ended", extra={"left_in_flight": len(leftovers), "refunded": refunded})
