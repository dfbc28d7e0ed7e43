"""Small asyncio helpers the services share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

RESTARTS = Counter(
    "maas_background_restarts_total", "Background loops restarted after they ended", ["loop"]
)

LOOP_LAG = Histogram(
    "maas_event_loop_lag_seconds",
    "How late the event loop woke a sleeper: a stall (synchronous work, a long callback, "
    "garbage collection) that every request on the loop waited out",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

log = logging.getLogger(__name__)

T = TypeVar("T")


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when `stop` is set, so shutdowns never wait out a pause."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def settle(answers: Iterable[asyncio.Future[Any]], outcomes: Iterable[Any]) -> None:
    """Each caller's answer from a batched call: an exception outcome is raised to its
    caller, anything else is its result; a caller that gave up (its future done) is left."""
    for answer, outcome in zip(answers, outcomes, strict=True):
        if answer.done():
            continue
        if isinstance(outcome, BaseException):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)


async def unless_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None when `stop` is set first (`work` is then cancelled): one
    round of background work never holds a shutdown up."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def measure_loop_lag(stop: asyncio.Event, every_s: float = 0.25) -> None:
    """Sleep `every_s` again and again and record how much later than asked the loop
    woke up (`maas_event_loop_lag_seconds`), until `stop`."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + every_s
        await sleep_unless(stop, every_s)
        if not stop.is_set():
            LOOP_LAG.observe(max(0.0, loop.time() - due))


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` in the background for the duration of the block, then cancel it."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Supervised:
    """A background loop that must run for the life of the process, restarted if it ends.

    A loop that raises, or returns before `stop` is set, has stopped doing its work (a
    key refresher that died keeps withdrawn keys valid for good), so it is logged,
    counted and started again after a pause. `alive` says whether it is running now;
    readiness reports it.
    """

    def __init__(
        self, name: str, loop: Callable[[asyncio.Event], Awaitable[None]], *, restart_s: float = 1.0
    ) -> None:
        self.name = name
        self.loop = loop
        self.restart_s = restart_s
        self.alive = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.alive = True
            try:
                await self.loop(stop)
            except Exception:
                log.exception("background loop failed; restarting", extra={"loop": self.name})
            else:
                if stop.is_set():
                    return
                log.error("background loop ended; restarting", extra={"loop": self.name})
            finally:
                self.alive = False
            RESTARTS.labels(self.name).inc()
            await sleep_unless(stop, self.restart_s)
