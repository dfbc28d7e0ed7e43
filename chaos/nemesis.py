"""The nemesis: a schedule of faults drawn from the seed, then carried out on the stack.

The schedule is pure (`schedule(seed, seconds, rollback)`): the same seed gives the same
faults, targets, moments and durations. Carrying it out waits for a fault's target to
be back (a restart can take longer than planned), so when faults land may drift; which
faults, in which order, never does. Several faults run at once on different targets.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from chaos.history import History
from chaos.stack import GATEWAYS, LEDGERS, VISIBILITY_TIMEOUT_S, ChaosStack

PROCESS_TARGETS = (*GATEWAYS, *LEDGERS, "meme")
# kind -> the targets it may hit
KINDS: dict[str, tuple[str, ...]] = {
    "sigkill": PROCESS_TARGETS,
    "sigterm": PROCESS_TARGETS,
    "sigstop": PROCESS_TARGETS,
    "store-restart": ("store",),
    "redis-restart": ("redis",),
    "localstack-pause": ("localstack",),
    "slow-meme": ("meme",),
}
ROLLBACK_KIND = "redis-rollback"
GAP_S = (2.0, 6.0)  # between one fault's start and the next's
RESTART_ALLOWANCE_S = 8.0  # planned time for a process to come back


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the nemesis begins
    kind: str
    target: str
    hold_s: float  # how long the target stays down, stopped or slow

    @property
    def planned_busy_s(self) -> float:
        return self.hold_s + RESTART_ALLOWANCE_S


def hold_for(kind: str, rng: random.Random) -> float:
    """How long a fault of `kind` lasts, from the seed's generator."""
    if kind == "localstack-pause":  # messages taken before it come back to the queue
        return round(VISIBILITY_TIMEOUT_S + rng.uniform(2, 6), 2)
    if kind == "slow-meme":  # a stall under the meme timeout: slow answers, not failures
        return round(rng.uniform(0.3, 1.2), 2)
    if kind == "sigstop":
        return round(rng.uniform(1, 8), 2)
    if kind == ROLLBACK_KIND:  # the writes a failover to a replica behind loses
        return round(rng.uniform(1, 4), 2)
    return round(rng.uniform(0.2, 3), 2)


def schedule(
    seed: int, seconds: float, rollback: bool = False, only: list[str] | None = None
) -> list[Fault]:
    """The faults of a run of `seconds`: every kind (`only` these), rollbacks if asked."""
    rng = random.Random(seed)
    kinds = {kind: targets for kind, targets in KINDS.items() if not only or kind in only}
    if rollback:
        kinds[ROLLBACK_KIND] = ("redis",)
    busy_until: dict[str, float] = {}
    faults: list[Fault] = []
    at = rng.uniform(*GAP_S)
    while at < seconds:
        kind = rng.choice(sorted(kinds))
        free = [target for target in kinds[kind] if busy_until.get(target, 0) <= at]
        if free:
            fault = Fault(round(at, 2), kind, rng.choice(free), hold_for(kind, rng))
            faults.append(fault)
            busy_until[fault.target] = at + fault.planned_busy_s
            if fault.target == "meme" or fault.kind in ("store-restart", ROLLBACK_KIND):
                busy_until[fault.target] += RESTART_ALLOWANCE_S  # let the path recover
        at += rng.uniform(*GAP_S)
    return faults


@dataclass
class Nemesis:
    stack: ChaosStack
    history: History
    snapshots: Path

    def __post_init__(self) -> None:
        self.busy: dict[str, asyncio.Event] = {}

    async def run(self, faults: list[Fault], started: float) -> None:
        """Each fault at its moment, once its target is free; returns when all are over."""
        loop = asyncio.get_running_loop()
        running: list[asyncio.Task[None]] = []
        for fault in faults:
            await asyncio.sleep(max(0.0, started + fault.at - loop.time()))
            if (previous := self.busy.get(fault.target)) is not None:
                await previous.wait()
            self.busy[fault.target] = asyncio.Event()
            running.append(asyncio.create_task(self._inject(fault)))
        await asyncio.gather(*running)

    async def _inject(self, fault: Fault) -> None:
        record = self.history.write("fault", **asdict(fault))
        try:
            await asyncio.to_thread(self._carry_out(fault))
            self.history.write("recovered", kind=fault.kind, target=fault.target, began=record["t"])
        finally:
            self.busy[fault.target].set()

    def _carry_out(self, fault: Fault) -> Callable[[], None]:
        """The blocking steps of `fault` (run in a thread: starting waits for health)."""
        stack, hold = self.stack, fault.hold_s

        def down_then_up(*stops: tuple[str, signal.Signals]) -> Callable[[], None]:
            def steps() -> None:
                for name, sig in stops:
                    stack.stop_process(name, sig)
                time.sleep(hold)
                for name, _ in reversed(stops):
                    stack.start_process(name)

            return steps

        def paused(name: str) -> Callable[[], None]:
            def steps() -> None:
                stack.send(name, signal.SIGSTOP)
                time.sleep(hold)
                stack.send(name, signal.SIGCONT)

            return steps

        def rolled_back() -> None:
            snapshot = self.snapshots / f"redis-{fault.at}.rdb"
            # Before asking: the dump holds the data of when Redis forks for it, which
            # may be later (after an AOF rewrite), never earlier.
            self.history.write("snapshot", target="redis", fault_at=fault.at)
            stack.snapshot_redis(snapshot)
            time.sleep(hold)
            stack.restart_redis_from(snapshot)

        match fault.kind:
            case "sigkill":
                return down_then_up((fault.target, signal.SIGKILL))
            case "sigterm":
                return down_then_up((fault.target, signal.SIGTERM))
            case "sigstop" | "slow-meme" | "localstack-pause":
                return paused(fault.target)
            case "store-restart":  # FerretDB killed, PostgreSQL shut down, both back
                return down_then_up(("ferretdb", signal.SIGKILL), ("postgres", signal.SIGTERM))
            case "redis-restart":  # killed; it starts again from its AOF
                return down_then_up(("redis", signal.SIGKILL))
            case "redis-rollback":
                return rolled_back
        raise ValueError(f"unknown fault kind {fault.kind!r}")
