"""The nine scenarios: 5 regions, 200 accounts, one simulated hour each."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sim.network import Partition

HOUR_S = 3600.0


@dataclass(frozen=True)
class Scenario:
    name: str
    travellers: float = 0.0  # share of accounts that move between regions
    fleets: float = 0.0  # share of accounts whose clients run in three regions at once
    balance_hours: float = 3.0  # balance as hours of the account's own demand
    heavy: bool = False  # one more account at 50 requests/s (the broker-calls goal)
    partitions: tuple[Partition, ...] = field(default_factory=tuple)
    duplicates: float = 0.0  # share of queue messages delivered twice
    loss: float = 0.001  # share of cross-region messages lost
    redis_loss_s: float | None = None  # when r1's Redis loses everything
    credits_every_s: float | None = None


MIXED = Scenario("mixed", travellers=0.3, fleets=0.2)
TEN_MINUTES_AT_HALF_TIME = (1200.0, 1800.0)

SCENARIOS = (
    Scenario("steady", heavy=True),
    Scenario("traveller", travellers=0.5),
    Scenario("concurrent", fleets=0.3),
    Scenario("drain to zero", travellers=0.2, fleets=0.2, balance_hours=0.5),
    replace(MIXED, name="region partition",
            partitions=(Partition("r2", *TEN_MINUTES_AT_HALF_TIME),)),
    replace(MIXED, name="home partition",
            partitions=(Partition("r0", *TEN_MINUTES_AT_HALF_TIME),)),
    replace(MIXED, name="duplicates and reordering", duplicates=0.05, loss=0.01),
    replace(MIXED, name="Redis loss", redis_loss_s=1800),
    Scenario("credits during leases", travellers=0.2, fleets=0.2, balance_hours=0.3,
             credits_every_s=300),
)  # fmt: skip
# Where the baselines' weakness shows best: accounts running out while a region is cut.
DRAIN_IN_PARTITION = replace(
    SCENARIOS[3], name="drain during a partition", partitions=SCENARIOS[4].partitions
)
# A mutant that mishandles a Redis loss shows when debits are on their way at that moment.
BUSY_REDIS_LOSS = replace(SCENARIOS[7], name="Redis loss, busy", heavy=True)
BY_NAME = {s.name: s for s in (*SCENARIOS, DRAIN_IN_PARTITION, BUSY_REDIS_LOSS)}
