"""`make sim`: every scenario over many seeds, the baselines and the mutants; a table.

    python -m sim.run [--seeds 1000] [--quick] [--jobs 2]

A run is one seed of one scenario against one system, an hour of virtual time and ten
minutes more for the pipeline to settle, judged by an oracle that keeps one instantly
shared counter per account. Exits 1 when the design misses a goal or the checker fails
to flag a baseline or mutant that overspends.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from sim.baselines import Homed, async_counters, full_balance
from sim.engine import Clock
from sim.network import Network, Partition
from sim.scenarios import BY_NAME, HOUR_S, SCENARIOS, Scenario
from sim.workload import System, Workload
from sim.world import Sliced

SETTLE_S = 600.0
REDIS_DOWN_S = 5.0  # a lost Redis answers nothing this long, then starts empty
SYSTEMS: dict[str, Callable[[Clock, Network, Scenario], System]] = {
    "slices": lambda c, n, s: Sliced(c, n, duplicates=s.duplicates),
    "slices, answering 503 at once": lambda c, n, s: Sliced(
        c, n, duplicates=s.duplicates, wait_s=0
    ),
    "homed and forwarded": lambda c, n, s: Homed(c, n),
    "full balance per region": lambda c, n, s: full_balance(c, n),
    "async counters": lambda c, n, s: async_counters(c, n),
    "mutant: no slice check": lambda c, n, s: Sliced(
        c, n, duplicates=s.duplicates, check_slices=False
    ),
    "mutant: close before debits": lambda c, n, s: Sliced(
        c, n, duplicates=s.duplicates, close_via_queue=False
    ),
}
# What the baselines and mutants are run against: where each one's weakness shows.
CHALLENGES = {
    "slices": ("drain during a partition",),
    "slices, answering 503 at once": ("drain to zero", "credits during leases"),
    "homed and forwarded": ("traveller", "drain during a partition"),
    "full balance per region": ("drain to zero", "drain during a partition"),
    "async counters": ("drain to zero", "drain during a partition"),
    "mutant: no slice check": ("drain to zero",),
    "mutant: close before debits": ("Redis loss, busy",),
}
OVERSPENDING = ("full balance per region", "async counters")  # the checker must flag them
MUTANTS = ("mutant: no slice check", "mutant: close before debits")  # in every run


@dataclass(frozen=True)
class Result:
    system: str
    scenario: str
    seed: int
    requests: int
    overspend: int
    cross_region: int
    held: int  # served after finding the slice empty and waiting for a grant
    false_refusals: int  # outside partitions and outages
    requests_outside: int
    moves: int
    moves_local: int
    broker_per_1000: float | None  # the 50 requests/s account's
    books_exact: bool | None  # ledger = oracle (within the lost slice), leased = slices
    trace: str

    @property
    def flagged(self) -> bool:
        return self.overspend > 0 or self.books_exact is False


def simulate(system: str, scenario_name: str, seed: int) -> Result:
    return run_one(system, BY_NAME[scenario_name], seed)


def run_one(system: str, scenario: Scenario, seed: int, end_s: float = HOUR_S) -> Result:
    """`scenario` for `end_s` of virtual time, then `SETTLE_S` with no clients."""
    clock = Clock(seed)
    network = Network(clock, loss=scenario.loss, partitions=list(scenario.partitions))
    built = SYSTEMS[system](clock, network, scenario)
    workload = Workload(clock, built, network, scenario, end_s)
    if scenario.redis_loss_s is not None and isinstance(built, Sliced):
        clock.after(scenario.redis_loss_s, built.lose_redis, "r1", REDIS_DOWN_S)
        network.outages.append(
            Partition("r1", scenario.redis_loss_s, scenario.redis_loss_s + REDIS_DOWN_S)
        )
    clock.run(end_s + SETTLE_S)
    tally = workload.tally
    broker = books = None
    if isinstance(built, Sliced):
        books = all(exact(built, tally.funded[a] - tally.served_tokens[a], a) for a in tally.funded)
        if workload.heavy:
            broker = 1000 * built.books["heavy"].broker_calls / tally.heavy_requests
    return Result(
        system, scenario.name, seed, tally.requests, tally.overspend, tally.cross_region,
        tally.held, tally.false_refusals, tally.requests - tally.requests_in_failure, tally.moves,
        tally.moves_served_locally, broker, books, clock.trace_hash,
    )  # fmt: skip


def exact(world: Sliced, remaining: int, account: str) -> bool:
    """The ledger agrees with the oracle (short of no more than what a lost Redis's
    close took as spent), MongoDB's `leased` is the sum of the slices, and
    `balance >= leased >= 0`."""
    books = world.books[account]
    agrees = books.balance == remaining or 0 <= remaining - books.balance <= books.lost
    return agrees and books.leased == world.slices(account) and books.balance >= books.leased >= 0


def plan(seeds: int) -> list[tuple[str, str, int]]:
    runs = [("slices", s.name, seed) for s in SCENARIOS for seed in range(1, seeds + 1)]
    for system, scenarios in CHALLENGES.items():
        runs += [(system, name, seed) for name in scenarios for seed in range(1, min(seeds, 3) + 1)]
    return runs


def table(results: list[Result]) -> tuple[str, bool]:
    """The goals per scenario for the design, then the others; and whether all held."""
    ok = True
    lines = [
        "| scenario | runs | requests | overspend | cross-region calls | served after "
        "waiting for a grant (≤ 1 s) | false 402/503 "
        "(outside partitions and outages) | first after a move served locally (outside them) | "
        "broker "
        "calls / 1000 (50/s) | ledger = oracle, leased = slices | same seed, same trace |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ours = [r for r in results if r.system == "slices"]
    for scenario in SCENARIOS:
        rows = [r for r in ours if r.scenario == scenario.name]
        if not rows:
            continue
        requests = sum(r.requests for r in rows)
        outside = sum(r.requests_outside for r in rows)
        false = sum(r.false_refusals for r in rows)
        moves, local = sum(r.moves for r in rows), sum(r.moves_local for r in rows)
        broker = [r.broker_per_1000 for r in rows if r.broker_per_1000 is not None]
        overspend = sum(r.overspend for r in rows)
        cross = sum(r.cross_region for r in rows)
        held = 100 * sum(r.held for r in rows) / max(1, requests)
        exact_books = all(r.books_exact for r in rows)
        replay = rows[0].trace == simulate("slices", scenario.name, rows[0].seed).trace
        false_share = 100 * false / max(1, outside)
        limit = 0.01 if scenario.name == "steady" else 0.1
        move_share = 100 * local / moves if moves else None
        goals = [
            overspend == 0, cross == 0, false_share <= limit, exact_books, replay,
            move_share is None or move_share >= 99, not broker or max(broker) <= 2,
        ]  # fmt: skip
        ok &= all(goals)
        lines.append(
            f"| {scenario.name} | {len(rows)} | {requests:,} | {overspend} | {cross} | "
            f"{held:.3f} % | "
            f"{false_share:.4f} % (≤ {limit} %) | "
            f"{'-' if move_share is None else f'{move_share:.2f} %'} | "
            f"{f'{max(broker):.2f}' if broker else '-'} | {'yes' if exact_books else 'NO'} | "
            f"{'yes' if replay else 'NO'} |"
        )
    lines += [
        "",
        "| system | scenario | runs | overspend (tokens) | cross-region calls | "
        "false refusals (outside partitions and outages) | first after a move served "
        "locally | checker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system, scenarios in CHALLENGES.items():
        for name in scenarios:
            rows = [r for r in results if (r.system, r.scenario) == (system, name)]
            if not rows:
                continue
            flagged = sum(r.flagged for r in rows)
            if system in MUTANTS:
                ok &= flagged == len(rows)
            elif system in OVERSPENDING:
                ok &= flagged > 0
            else:
                ok &= flagged == 0
            outside = sum(r.requests_outside for r in rows)
            refused = 100 * sum(r.false_refusals for r in rows) / max(1, outside)
            moves = sum(r.moves for r in rows)
            moved = f"{100 * sum(r.moves_local for r in rows) / moves:.2f} %" if moves else "-"
            lines.append(
                f"| {system} | {name} | {len(rows)} | {sum(r.overspend for r in rows):,} | "
                f"{sum(r.cross_region for r in rows):,} | {refused:.2f} % | {moved} | "
                f"{'flagged' if flagged else 'clean'} in {flagged} of {len(rows)} |"
            )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="2 seeds a scenario")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    runs = plan(seeds)
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(simulate, *zip(*runs, strict=True), chunksize=1))
    text, ok = table(results)
    print(text)
    print(f"\n{len(results)} runs in {time.monotonic() - started:.0f} s; goals "
          f"{'met' if ok else 'MISSED'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
