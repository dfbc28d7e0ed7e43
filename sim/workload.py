"""Clients that stay, travel or run fleets in three regions, and the oracle that judges
every answer: one instantly shared counter per account."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from sim.engine import Clock
from sim.network import Network
from sim.scenarios import HOUR_S, Scenario
from sim.world import REGIONS, Answer, Respond

ACCOUNTS = 200
RATES = (0.02, 0.5)  # requests a second per account, log-uniform
HEAVY_RATE = 50.0
MOVE_EVERY_S = (300.0, 900.0)
RETRY_AFTER_S = 1.0
RETRIES = 3  # a client tries a refused (503) request this many more times, a second apart
WARMUP_S = 60.0  # counted for the books, not for the goals: the slices are being granted


class System(Protocol):
    def open(self, account: str, tokens: int, regions: tuple[str, ...]) -> None: ...
    def credit(self, account: str, tokens: int) -> None: ...
    def serve(self, account: str, region: str, price: int, respond: Respond) -> None: ...


@dataclass(slots=True)
class Client:
    account: str
    regions: tuple[str, ...]  # a traveller's itinerary, a fleet's three, or one
    rate: float
    price: int
    fleet: bool = False
    here: int = 0
    moved: bool = False  # its next request is the first since it moved


@dataclass
class Tally:
    requests: int = 0
    served: int = 0
    refused: int = 0
    false_refusals: int = 0  # the oracle had the tokens; outside partitions and outages
    false_in_failure: int = 0
    requests_in_failure: int = 0
    cross_region: int = 0
    held: int = 0  # served after finding the slice empty and waiting for a grant
    moves: int = 0  # outside partitions and outages
    moves_served_locally: int = 0
    heavy_requests: int = 0
    served_tokens: dict[str, int] = field(default_factory=dict)
    funded: dict[str, int] = field(default_factory=dict)  # opened with, plus credits

    @property
    def overspend(self) -> int:
        return sum(max(0, self.served_tokens[a] - self.funded[a]) for a in self.funded)


class Workload:
    def __init__(
        self, clock: Clock, system: System, network: Network, scenario: Scenario,
        end_s: float = HOUR_S,
    ) -> None:  # fmt: skip
        self.clock, self.system, self.network, self.end_s = clock, system, network, end_s
        self.tally = Tally()
        self.clients = self._clients(scenario)
        self.heavy = "heavy" if scenario.heavy else None
        for client in self.clients:
            demand = client.rate * client.price
            tokens = math.ceil(demand * 3600 * scenario.balance_hours)
            system.open(client.account, tokens, client.regions)
            self.tally.funded[client.account] = tokens
            self.tally.served_tokens[client.account] = 0
            streams = client.regions if client.fleet else (None,)
            for region in streams:
                self._next(client, region)
            if len(client.regions) > 1 and not client.fleet:
                self.clock.after(self.clock.rng.uniform(*MOVE_EVERY_S), self._move, client)
            if scenario.credits_every_s:
                self.clock.after(
                    self.clock.rng.uniform(0, scenario.credits_every_s), self._credit, client,
                    math.ceil(demand * scenario.credits_every_s * 0.5), scenario.credits_every_s,
                )  # fmt: skip

    def _clients(self, scenario: Scenario) -> list[Client]:
        rng, clients = self.clock.rng, []
        for n in range(ACCOUNTS):
            kind = rng.random()
            regions = rng.sample(REGIONS, 3)
            if kind >= scenario.travellers + scenario.fleets:
                regions = regions[:1]
            rate = math.exp(rng.uniform(math.log(RATES[0]), math.log(RATES[1])))
            price = 2 if rng.random() < 0.3 else 1
            fleet = scenario.travellers <= kind < scenario.travellers + scenario.fleets
            clients.append(Client(f"a{n:03}", tuple(regions), rate, price, fleet))
        if scenario.heavy:
            clients.append(Client("heavy", ("r1",), HEAVY_RATE, 1))
        return clients

    def _next(self, client: Client, region: str | None) -> None:
        rate = client.rate / (len(client.regions) if client.fleet else 1)
        self.clock.after(self.clock.rng.expovariate(rate), self._arrive, client, region)

    def _arrive(self, client: Client, region: str | None) -> None:
        if self.clock.now >= self.end_s:
            return
        self._request(client, region or client.regions[client.here])
        self._next(client, region)

    def _move(self, client: Client) -> None:
        if self.clock.now >= self.end_s:
            return
        client.here = (client.here + 1) % len(client.regions)
        client.moved = True
        self.clock.after(self.clock.rng.uniform(*MOVE_EVERY_S), self._move, client)

    def _credit(self, client: Client, tokens: int, every_s: float) -> None:
        if self.clock.now >= self.end_s:
            return
        self.system.credit(client.account, tokens)
        self.tally.funded[client.account] += tokens
        self.clock.after(every_s, self._credit, client, tokens, every_s)

    def _request(self, client: Client, region: str, retries: int = RETRIES) -> None:
        account, price = client.account, client.price
        remaining = self.tally.funded[account] - self.tally.served_tokens[account]
        failing = self.network.in_failure()
        moved, client.moved = client.moved and not client.fleet, False
        self.system.serve(
            account, region, price,
            lambda answer: self._answered(client, region, retries, remaining, failing, moved,
                                          answer),
        )  # fmt: skip

    def _answered(
        self, client: Client, region: str, retries: int, remaining: int, failing: bool,
        moved: bool, answer: Answer,
    ) -> None:  # fmt: skip
        """Judge an answer by the oracle as the request found it: `remaining` tokens, and
        whether a partition or outage was under way."""
        tally, account, price = self.tally, client.account, client.price
        self.clock.trace(account, region, answer.status)
        if answer.status == 200:
            tally.served_tokens[account] += price
        retry = answer.status == 503 and retries and self.clock.now + RETRY_AFTER_S < self.end_s
        if retry:
            self.clock.after(RETRY_AFTER_S, self._request, client, region, retries - 1)
        if self.clock.now < WARMUP_S:
            return
        tally.requests += 1
        if account == self.heavy:
            tally.heavy_requests += 1
        tally.requests_in_failure += failing
        tally.cross_region += answer.cross_region
        tally.held += answer.held and answer.status == 200
        if moved and remaining >= price and not failing:  # the oracle would serve it
            tally.moves += 1
            local = answer.status == 200 and not (answer.cross_region or answer.held)
            tally.moves_served_locally += local
        if answer.status == 200:
            tally.served += 1
            return
        tally.refused += 1
        if remaining >= price:
            if failing:
                tally.false_in_failure += 1
            else:
                tally.false_refusals += 1
