"""Virtual time, one seeded random stream, and a trace: a run is a pure function of its seed.

No asyncio and no wall clock: actions wait in a heap ordered by (time, arrival), so two
runs of one seed take the same steps in the same order and end with the same trace hash.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from typing import Any


class Clock:
    def __init__(self, seed: int) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._arrivals = 0
        self._trace = hashlib.sha256()

    def after(self, delay_s: float, action: Callable[..., None], *args: Any) -> None:
        """Run `action(*args)` `delay_s` from now (actions at one instant run in turn)."""
        heapq.heappush(self._queue, (self.now + delay_s, self._arrivals, action, args))
        self._arrivals += 1

    def run(self, until_s: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= until_s:
            self.now, _, action, args = heapq.heappop(queue)
            action(*args)
        self.now = until_s

    def trace(self, *facts: object) -> None:
        """Fold an outcome into the run's trace hash."""
        self._trace.update(repr((round(self.now, 6), facts)).encode())

    @property
    def trace_hash(self) -> str:
        return self._trace.hexdigest()[:16]
