"""Small asyncio helpers the services share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

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
Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when `stop` is set, so shutdowns never wait out a pause."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class StepBatcher(Generic[Item, Outcome]):
    """Items asked for in one step of the event loop, sent together by `send`.

    The first item of a step schedules the send for the step's end (`call_soon`), so
    every caller that runs in that step joins it, and nobody waits longer than the step.
    `send` gets the items (at most `max_size` a call, the calls side by side) and returns
    each one's outcome: an exception is raised to that item's caller, anything else is
    its result; if `send` raises, every item of its call gets that error. A caller that
    gives up before its step ends is not sent; one that gives up later is left alone.
    The Redis auto-pipeline and the meme client's batch share it; asyncio has no such
    helper, and the libraries that batch (aiodataloader) key and cache their calls.
    """

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[Sequence[Outcome | BaseException]]],
        max_size: int | None = None,
    ) -> None:
        self._send = send
        self._max_size = max_size
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, item: Item) -> asyncio.Future[Outcome]:
        """`item` in this step's batch; its outcome."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Outcome] = loop.create_future()
        self._waiting.append((item, answer))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return answer

    def _flush(self) -> None:
        waiting = [w for w in self._waiting if not w[1].done()]  # done: the caller gave up
        self._waiting = []
        size = self._max_size or len(waiting) or 1
        for start in range(0, len(waiting), size):
            task = asyncio.ensure_future(self._call(waiting[start : start + size]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _call(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        answers = [answer for _, answer in batch]
        try:
            outcomes: Sequence[Outcome | BaseException] = await self._send([i for i, _ in batch])
        except Exception as error:
            outcomes = [error] * len(batch)
        except BaseException:  # cancelled (the loop is closing): so are the callers
            for answer in answers:
                answer.cancel()
            raise
        if len(outcomes) != len(batch):
            wrong = RuntimeError("a batched call answered the wrong number of items")
            outcomes = [wrong] * len(batch)
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
