"""The known approaches the slices are measured against, in the same virtual world.

- `Homed`: every account lives in one region; a request elsewhere is forwarded there
  (a cross-region call on the hot path, and a refusal when the way is cut).
- `full_balance`: every region believes the whole balance and learns the others' spending
  once a minute (per-location counters: up to N times the balance spent).
- `async_counters`: every region spends locally and sends its spends to the others
  twice a second (replicated counters: overspend when spends cross, or a partition
  holds them back).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sim.engine import Clock
from sim.network import Network
from sim.world import REGIONS, Answer, Respond

SYNC_S = 60.0  # per-location counters learn the others' spending this often
ASYNC_S = 0.5  # replicated counters send their spends this often


@dataclass
class Homed:
    clock: Clock
    network: Network

    def __post_init__(self) -> None:
        self.balance: dict[str, int] = {}
        self.home: dict[str, str] = {}

    def open(self, account: str, tokens: int, regions: tuple[str, ...]) -> None:
        self.balance[account], self.home[account] = tokens, regions[0]

    def credit(self, account: str, tokens: int) -> None:
        self.balance[account] += tokens

    def serve(self, account: str, region: str, price: int, respond: Respond) -> None:
        respond(self._answer(account, region, price))

    def _answer(self, account: str, region: str, price: int) -> Answer:
        home = self.home[account]
        forwarded = region != home
        if forwarded and not self.network.reaches(region, home):
            return Answer(503, cross_region=True)
        if self.balance[account] < price:
            return Answer(402, cross_region=forwarded)
        self.balance[account] -= price
        return Answer(200, cross_region=forwarded)


@dataclass
class Replicated:
    """A counter per region; what one region spends reaches the others every `every_s`,
    or once a partition between them heals."""

    clock: Clock
    network: Network
    every_s: float
    local: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    unsent: dict[tuple[str, str], list[tuple[str, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def __post_init__(self) -> None:
        for region in REGIONS:
            self.clock.after(self.clock.rng.uniform(0, self.every_s), self._sync, region)

    def open(self, account: str, tokens: int, regions: tuple[str, ...]) -> None:
        for region in REGIONS:
            self.local[region][account] = tokens

    def credit(self, account: str, tokens: int) -> None:
        for region in REGIONS:
            self.local[region][account] += tokens

    def serve(self, account: str, region: str, price: int, respond: Respond) -> None:
        respond(self._answer(account, region, price))

    def _answer(self, account: str, region: str, price: int) -> Answer:
        if self.local[region][account] < price:
            return Answer(402)
        self.local[region][account] -= price
        for other in REGIONS:
            if other != region:
                self.unsent[(region, other)].append((account, price))
        return Answer(200)

    def _sync(self, region: str) -> None:
        for other in REGIONS:
            spends, cut = self.unsent[(region, other)], self.network.cut
            if other != region and spends and not cut(region) and not cut(other):
                self.clock.after(self.network.latency_s(region, other), self._learn, other, spends)
                self.unsent[(region, other)] = []
        self.clock.after(self.every_s, self._sync, region)

    def _learn(self, region: str, spends: list[tuple[str, int]]) -> None:
        for account, price in spends:
            self.local[region][account] -= price


def full_balance(clock: Clock, network: Network) -> Replicated:
    return Replicated(clock, network, every_s=SYNC_S)


def async_counters(clock: Clock, network: Network) -> Replicated:
    return Replicated(clock, network, every_s=ASYNC_S)
