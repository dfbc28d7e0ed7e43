"""The wide-area network between regions: 30-150 ms each way, some loss, and partitions."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.engine import Clock


@dataclass(frozen=True, slots=True)
class Partition:
    region: str  # cut off from every other region, not from its own clients
    start_s: float
    end_s: float


@dataclass
class Network:
    clock: Clock
    loss: float = 0.001
    partitions: list[Partition] = field(default_factory=list)
    outages: list[Partition] = field(default_factory=list)  # a region's Redis down, say
    messages: int = 0

    def cut(self, region: str) -> bool:
        now = self.clock.now
        return any(p.region == region and p.start_s <= now < p.end_s for p in self.partitions)

    def reaches(self, source: str, target: str) -> bool:
        """Whether a message sent now from `source` arrives at `target` (no partition on
        either side, and not lost)."""
        if source == target:
            return True
        self.messages += 1
        if self.cut(source) or self.cut(target):
            return False
        return self.clock.rng.random() >= self.loss

    def latency_s(self, source: str, target: str) -> float:
        return 0.0005 if source == target else self.clock.rng.uniform(0.030, 0.150)

    def in_failure(self) -> bool:
        """Whether a partition or an outage is under way anywhere (refusals then are
        counted apart)."""
        now = self.clock.now
        return any(self.cut(p.region) for p in self.partitions) or any(
            o.start_s <= now < o.end_s for o in self.outages
        )
