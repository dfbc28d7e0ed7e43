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
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from services.gateway.usecases.refunds import log_refund
from shared.accounting.bank import Charge, TokenBank
from shared.errors import ApiError

T = TypeVar("T")

log = logging.getLogger(__name__)


class Drain:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.closed = asyncio.Event()
        self._in_flight: dict[str, Charge] = {}
        self._waiting: set[asyncio.Task[Any]] = set()  # handlers waiting on a meme
        self._cut: set[asyncio.Task[Any]] = set()  # of those, the ones the close cancelled

    def begin(self) -> None:
        """Stop waiting for memes `window_s` from now."""
        log.info(
            "drain begun", extra={"window_s": self.window_s, "in_flight": len(self._in_flight)}
        )
        asyncio.get_running_loop().call_later(self.window_s, self._close)

    def _close(self) -> None:
        self.closed.set()
        self._cut = set(self._waiting)
        for task in self._cut:
            task.cancel()

    @contextlib.contextmanager
    def holding(self, charge: Charge) -> Iterator[None]:
        """Track a charge of this process while its meme is being made and answered."""
        self._in_flight[charge.id] = charge
        try:
            yield
        finally:
            self._in_flight.pop(charge.id, None)

    async def unless_closed(self, work: Coroutine[Any, Any, T]) -> T:
        """`work`'s result, or a 503 once the drain window has closed.

        The handler awaits `work` itself; the close cancels the handlers still waiting,
        and each turns its cancellation into the 503 (and takes it back, so the refund
        that follows runs as usual). Racing every meme against the close in tasks of
        their own cost two tasks and a wait a request, 5 % of the gateway's CPU.
        """
        task = asyncio.current_task()
        if self.closed.is_set() or task is None:
            work.close()
            raise _shutting_down()
        self._waiting.add(task)
        try:
            return await work
        except asyncio.CancelledError:
            if task not in self._cut:
                raise
            self._cut.discard(task)
            task.uncancel()
            raise _shutting_down() from None
        finally:
            self._waiting.discard(task)

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


def _shutting_down() -> ApiError:
    return ApiError(
        "shutting_down",
        "this gateway is shutting down; retry (nothing was charged)",
        headers={"Retry-After": "1"},
    )
