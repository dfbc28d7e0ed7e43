"""Background loops that must not die, readiness that answers from a cache, the event
loop's lag measured, and calls of one loop step sent as one batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson
import pytest

from shared.aio import StepBatcher, Supervised, measure_loop_lag
from shared.web import Readiness
from tests.metrics import sample


async def test_a_loop_that_fails_or_ends_is_restarted_and_seen_down_meanwhile() -> None:
    runs: list[int] = []
    seen_down = asyncio.Event()

    async def flaky(stop: asyncio.Event) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise AttributeError("'list' object has no attribute 'get'")
        if len(runs) == 2:
            return  # ended on its own
        await stop.wait()

    stop = asyncio.Event()
    loop = Supervised("flaky", flaky, restart_s=0.2)
    task = asyncio.create_task(loop.run(stop))
    for _ in range(40):
        if not loop.alive:
            seen_down.set()
        if len(runs) == 3:
            break
        await asyncio.sleep(0.02)
    assert len(runs) == 3
    assert seen_down.is_set()
    assert loop.alive
    stop.set()
    await asyncio.wait_for(task, timeout=1)
    assert not loop.alive
    assert len(runs) == 3, "a loop that ends because of stop is not restarted"


async def test_readiness_answers_from_the_last_check_without_calling_out() -> None:
    calls = 0
    up = True

    async def redis() -> None:
        nonlocal calls
        calls += 1
        if not up:
            raise ConnectionError

    refresher_alive = True
    readiness = Readiness({"redis": redis}, {"jwks": lambda: refresher_alive})
    assert readiness.answer().status == 503, "no verdict before the first check"
    await readiness.check()
    for _ in range(1000):  # a flood of probes
        assert readiness.answer().status == 200
    assert calls == 1
    refresher_alive = False
    down = readiness.answer()
    assert down.status == 503
    assert down.body is not None
    assert orjson.loads(down.body)["checks"] == {"redis": True, "jwks": False}  # type: ignore[arg-type]
    refresher_alive, up = True, False
    await readiness.check()
    assert readiness.answer().status == 503


async def test_a_probe_that_does_not_answer_in_time_fails_the_check_and_is_not_cancelled() -> None:
    """A driver's call cancelled from outside can break the driver (pymongo's topology
    lock), so a slow probe is left to end by its own timeouts, and only one runs."""
    answer, calls, cancelled = asyncio.Event(), 0, False

    async def mongo() -> None:
        nonlocal calls, cancelled
        calls += 1
        try:
            await answer.wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    readiness = Readiness({"mongo": mongo}, within_s=0.05)
    await readiness.check()
    await readiness.check()
    assert readiness.answer().status == 503
    assert (calls, cancelled) == (1, False), "still out: neither cancelled nor started again"
    answer.set()
    await readiness.check()
    assert readiness.answer().status == 200, "the probe still out answered"
    await readiness.check()
    assert (calls, cancelled) == (2, False), "then the next check probes again"


async def test_a_probe_stuck_at_shutdown_does_not_hold_the_stop_up() -> None:
    stop, stuck = asyncio.Event(), asyncio.Event()
    readiness = Readiness({"redis": stuck.wait}, within_s=0.05, every_s=10)
    running = asyncio.create_task(readiness.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    try:
        await asyncio.wait_for(running, timeout=1)
        assert readiness.answer().status == 503
    finally:
        stuck.set()  # the probe was left running, not cancelled


async def test_a_stall_of_the_event_loop_is_measured_as_lag() -> None:
    stop = asyncio.Event()
    stalls = sample("maas_event_loop_lag_seconds_count")
    lag = sample("maas_event_loop_lag_seconds_sum")
    watcher = asyncio.create_task(measure_loop_lag(stop, every_s=0.01))
    await asyncio.sleep(0.02)
    time.sleep(0.2)  # synchronous work holding the loop
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(watcher, timeout=1)
    assert sample("maas_event_loop_lag_seconds_count") > stalls
    assert sample("maas_event_loop_lag_seconds_sum") - lag >= 0.15


async def test_the_calls_of_one_step_go_together_in_batches_of_at_most_max_size() -> None:
    sent: list[list[int]] = []

    async def send(items: list[int]) -> Sequence[int | BaseException]:
        sent.append(items)
        return [ValueError(i) if i == 3 else i * 10 for i in items]

    batcher = StepBatcher[int, int](send, max_size=2)
    answers = [batcher.add(i) for i in range(5)]
    outcomes = await asyncio.gather(*answers, return_exceptions=True)
    assert sent == [[0, 1], [2, 3], [4]]
    assert outcomes[:3] == [0, 10, 20]
    assert outcomes[4] == 40
    assert isinstance(outcomes[3], ValueError), "an item's error is its caller's alone"
    await batcher.add(5)
    assert sent[-1] == [5], "the next step is a batch of its own"


async def test_a_caller_that_gave_up_before_its_step_ended_is_not_sent() -> None:
    sent: list[str] = []

    async def send(items: list[str]) -> Sequence[str | BaseException]:
        sent.extend(items)
        return items

    batcher = StepBatcher[str, str](send)
    kept, dropped = batcher.add("kept"), batcher.add("dropped")
    dropped.cancel()
    assert await kept == "kept"
    assert sent == ["kept"]


@pytest.mark.parametrize("failure", ["raises", "miscounts"])
async def test_a_send_that_fails_fails_each_caller_of_its_batch(failure: str) -> None:
    async def send(items: list[int]) -> Sequence[int | BaseException]:
        if failure == "raises":
            raise ConnectionError("gone")
        return items[:-1]

    batcher = StepBatcher[int, int](send)
    outcomes = await asyncio.gather(batcher.add(1), batcher.add(2), return_exceptions=True)
    expected = ConnectionError if failure == "raises" else RuntimeError
    assert all(isinstance(o, expected) for o in outcomes), outcomes


async def test_a_send_cancelled_cancels_its_callers() -> None:
    started = asyncio.Event()

    async def send(items: list[int]) -> Sequence[int | BaseException]:
        started.set()
        await asyncio.Event().wait()
        return items

    batcher = StepBatcher[int, int](send)
    answer = batcher.add(1)
    await started.wait()
    (sending,) = asyncio.all_tasks() - {asyncio.current_task()}
    sending.cancel()  # as when the loop closes
    with pytest.raises(asyncio.CancelledError):
        await answer
