"""What held the event loop, and the garbage collector's share of it.

The loop-lag histogram says that requests waited; it cannot say for what, because
nothing on the loop runs while the loop is held. A thread can: it checks the loop's
heartbeat twice per threshold, and when the loop has not turned for
`threshold_s` it logs the loop thread's stack at that moment (once per stall) and
counts it. A loop that is only busy (many short callbacks) keeps beating and is never
reported: lag without stalls is queueing, or a process waiting for a core. asyncio's
own slow-callback report needs debug mode, whose overhead changes what is measured,
hence these few lines. Each check wakes a thread that needs the interpreter: checks
every 25 ms cost 1.5 % of a core idle and a sixth more CPU per meme under load, so the
default threshold is 0.5 s (four checks a second). Collections are timed through
`gc.callbacks`, so a pause the collector caused is told apart from one the code did.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import Counter, Histogram

STALLS = Counter(
    "maas_event_loop_stalls_total",
    "Times the event loop did not turn for the stall threshold (each logged with the code "
    "that held it)",
)
GC_PAUSES = Histogram(
    "maas_gc_pause_seconds",
    "Garbage collections, by generation: the event loop waits them out",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
STACK_FRAMES = 12
GC_YOUNG_THRESHOLD = 7_000

log = logging.getLogger(__name__)


class StallWatch:
    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self._beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stopped = threading.Event()

    async def beat(self) -> None:
        """The heartbeat the watch thread checks; runs on the loop it watches."""
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self.threshold_s / 2)

    def watch(self) -> None:
        reported = 0.0  # the beat of the last stall reported
        while not self._stopped.wait(self.threshold_s / 2):
            beat = self._beat
            held_s = time.monotonic() - beat
            if held_s < self.threshold_s or beat == reported:
                continue
            reported = beat
            frame = sys._current_frames().get(self._loop_thread)
            stack = traceback.format_stack(frame)[-STACK_FRAMES:] if frame is not None else []
            # A collection holds the interpreter to its end: the watch sees the loop in
            # the timer's callback right after it.
            collected = frame is not None and frame.f_code is GcTimer.__call__.__code__
            STALLS.inc()
            log.warning(
                "event loop held",
                extra={
                    "held_ms": round(held_s * 1000),
                    "by": "garbage collection" if collected else "code",
                    "stack": [line.strip().replace("\n", " | ") for line in stack],
                },
            )

    def stop(self) -> None:
        self._stopped.set()


class GcTimer:
    """Times each collection (`gc.callbacks` calls it at start and at stop)."""

    def __init__(self) -> None:
        self._started = 0.0
        self._pauses = [GC_PAUSES.labels(str(generation)) for generation in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._pauses[info["generation"]].observe(time.perf_counter() - self._started)


def spare_the_loop_collections() -> None:
    """Keep the garbage collector's pauses off the requests' path; called once started.

    Measured at saturation (docs/performance.md): the gateway ran 67 young collections a
    second and a full one every two seconds, 81 ms each, which were its event-loop
    stalls. What was built at start (modules, settings, clients) lives as long as the
    process: frozen, a full collection no longer walks it (4.6 ms). A young generation
    of 7,000 objects instead of 700 lets a request's objects die of their reference
    counts before a collection promotes them: 2 young collections in 15 s, not 1,177.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


@contextlib.asynccontextmanager
async def watching(threshold_s: float) -> AsyncIterator[None]:
    """Stalls of `threshold_s` or more logged and counted (0: no watch), and every
    collection timed, while the block runs."""
    timer = GcTimer()
    gc.callbacks.append(timer)
    watch = StallWatch(threshold_s) if threshold_s > 0 else None
    thread = beat = None
    if watch is not None:
        beat = asyncio.ensure_future(watch.beat())
        thread = threading.Thread(target=watch.watch, name="stall-watch", daemon=True)
        thread.start()
    try:
        yield
    finally:
        gc.callbacks.remove(timer)
        if watch is not None and beat is not None and thread is not None:
            watch.stop()
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            thread.join()
