"""MaaS across regions as designed (docs/multi-region.md), in virtual time.

Each region charges against its own slices (the twin of the charge script; a charge
that finds its slice empty waits up to a second for an urgent grant, as the services
do), keeps its events in an outbox that its relay ships to the home region's FIFO
queue, and runs an agent that asks the broker for grants and gives idle slices back.
The home region holds MongoDB: the broker grants out of `balance - leased`, and the
ledger applies each region's events with the product's own ordering rules
(services/ledger/domain/apply.py).

A region's events are numbered per (account, region) and its epoch is the region's
Redis incarnation: a Redis lost and started again begins a new epoch, and its first
message closes the old incarnation's leases as spent.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from services.ledger.domain.apply import Position, plan
from shared.accounting.events import Event
from shared.accounting.slices import Demand, GrantPolicy, grant, to_return, wanted
from sim.engine import Clock
from sim.network import Network

REGIONS = ("r0", "r1", "r2", "r3", "r4")
HOME = "r0"  # where MongoDB, the broker and the ledger are
TICK_S = 1.0  # the agents' pace
RELAY_S = 0.2  # the relays' linger
RETRY_S = 1.0  # an unanswered grant request is sent again (same number) after this
REFUSED_BACKOFF_S = 30.0  # a refill refused near zero is not asked again for this long
SPENT_OUT_KEPT_S = 1.0  # as the services' gateway keeps a 402 found in MongoDB
REDELIVER_S = (1.0, 30.0)  # a duplicated FIFO message comes again this much later
RETURN = "slice:return"


class Answer(NamedTuple):
    status: int  # 200 served, 402 no tokens, 503 tokens in transit (or Redis down)
    cross_region: bool = False  # whether answering waited on another region
    held: bool = False  # it found its slice empty and waited for a grant (not the hot path)


Respond = Callable[[Answer], None]


@dataclass(slots=True)
class Held:
    """A request that found its slice empty, waiting for a grant (`Sliced.wait_s`)."""

    price: int
    respond: Respond
    answered: bool = False


@dataclass(frozen=True, slots=True)
class Close:
    """A region's Redis was lost: its leases of `incarnation` count as spent."""

    region: str
    incarnation: int


@dataclass(slots=True)
class Slot:
    """One account in one region's Redis."""

    tokens: int = 0
    seq: int = 0
    spent: int = 0  # since the agent's last tick
    demand: Demand = field(default_factory=Demand)
    backlog: int = 0  # tokens refused (503) since the last grant
    last_used_s: float = -1e9
    asking: int = 0  # the grant number waiting for its answer, 0 if none
    urgent: bool = False  # whether that ask was for clients waiting
    recheck: bool = False  # tokens came back to the account while that ask was out
    refused_until_s: float = 0.0  # a refill was refused: not asked again before then
    # The broker's last word was "no tokens here or anywhere": refusals are answered
    # from here until then, as the services keep a 402 for a second (a credit may have
    # crossed that answer on its way).
    spent_out_until_s: float = 0.0
    held: list[Held] = field(default_factory=list)  # oldest first


@dataclass(slots=True)
class Region:
    name: str
    slots: dict[str, Slot] = field(default_factory=dict)
    outbox: list[Event | Close] = field(default_factory=list)
    # accounts the agent looks after, in a stable order (a set's would vary by process)
    active: dict[str, None] = field(default_factory=dict)
    incarnation: int = 1
    down_until_s: float = 0.0
    fifo_tail_s: float = 0.0  # when its last shipped message reaches the ledger

    def slot(self, account: str) -> Slot:
        slot = self.slots.get(account)
        if slot is None:
            slot = self.slots[account] = Slot()
        self.active[account] = None
        return slot


@dataclass(slots=True)
class Books:
    """An account in MongoDB."""

    balance: int
    leased: int = 0
    lost: int = 0  # closed as spent when a region's Redis was lost
    broker_calls: int = 0


@dataclass
class Sliced:
    """The system under test: slices, grants and returns."""

    clock: Clock
    network: Network
    policy: GrantPolicy = field(default_factory=GrantPolicy)
    duplicates: float = 0.0  # the share of FIFO messages delivered twice
    check_slices: bool = True  # a mutant charges without looking at the slice
    close_via_queue: bool = True  # a mutant closes a lost Redis's leases at once, as unspent
    # A charge that finds its slice empty waits this long for an urgent grant, as the
    # services do (MAAS_SLICE_WAIT_S); 0 answers 503 at once, as the first design did.
    wait_s: float = 1.0

    def __post_init__(self) -> None:
        self.regions = {name: Region(name) for name in REGIONS}
        self.books: dict[str, Books] = {}
        self.positions: dict[str, Position] = {}
        # granted - spent - given back, by account, then by (region, incarnation)
        self.leases: dict[str, dict[tuple[str, int], int]] = defaultdict(lambda: defaultdict(int))
        self.grants: dict[tuple[str, str, int, int], int] = {}  # idempotent by number
        self.recent_asks: dict[str, dict[str, float]] = defaultdict(dict)
        self.waiting: dict[str, dict[str, None]] = defaultdict(dict)  # short of tokens
        self._numbers = itertools.count(1)
        self._ids = itertools.count(1)
        for region in self.regions.values():
            self.clock.after(self.clock.rng.uniform(0, TICK_S), self._tick, region)
            self.clock.after(self.clock.rng.uniform(0, RELAY_S), self._relay, region)

    # the account's side

    def open(self, account: str, tokens: int, regions: tuple[str, ...]) -> None:
        """A new account; `regions` are the ones it used recently (a standby slice each)."""
        self.books[account] = Books(tokens)
        for name in regions:
            self.regions[name].slot(account).last_used_s = self.clock.now

    def credit(self, account: str, tokens: int) -> None:
        self.books[account].balance += tokens
        self.waiting.pop(account, None)
        for region in self.regions.values():
            self._send(HOME, region.name, self._credited, region, account)

    def serve(self, account: str, region_name: str, price: int, respond: Respond) -> None:
        """The charge script's twin (one atomic step on the region's Redis), then, when the
        slice is short, the services' wait for an urgent grant."""
        region = self.regions[region_name]
        if self.clock.now < region.down_until_s:
            return respond(Answer(503))
        slot = region.slot(account)
        slot.last_used_s = self.clock.now
        if (slot.tokens >= price and not slot.held) or not self.check_slices:
            self._debit(region, account, slot, price)
            return respond(Answer(200))
        if self._spent_out(slot):
            return respond(Answer(402))
        slot.backlog += price
        if not slot.asking:
            self._ask_urgently(region, account, slot, price)
        if not self.wait_s:
            return respond(Answer(503))
        held = Held(price, respond)
        slot.held.append(held)
        self.clock.after(self.wait_s, self._give_up, slot, held)
        return None

    def _debit(self, region: Region, account: str, slot: Slot, price: int) -> None:
        slot.tokens -= price
        slot.spent += price
        slot.seq += 1
        region.outbox.append(self._event(account, region, price, "meme", slot.seq))
        if self._may_refill(slot):
            # The charge script marks a slice that fell below its floor; the agent asks
            # for it at once rather than at its next tick.
            asked = wanted(self.policy, slot.tokens, slot.demand.per_s, slot.backlog)
            if asked:
                self._ask(region, account, slot, asked)

    def _serve_held(self, region: Region, account: str, slot: Slot) -> None:
        """Tokens came: the waiting requests are charged in the order they came, each
        as a charge of its own; one answered 402 when the broker says none are left."""
        while slot.held and (slot.tokens >= slot.held[0].price or self._spent_out(slot)):
            held = slot.held.pop(0)
            held.answered = True
            if slot.tokens >= held.price:
                self._debit(region, account, slot, held.price)
                held.respond(Answer(200, held=True))
            else:
                held.respond(Answer(402, held=True))

    def _give_up(self, slot: Slot, held: Held) -> None:
        if not held.answered:
            slot.held.remove(held)
            held.respond(Answer(503, held=True))

    def _spent_out(self, slot: Slot) -> bool:
        return self.clock.now < slot.spent_out_until_s

    def _may_refill(self, slot: Slot) -> bool:
        """Whether a refill (not urgent) may be asked now: none is out, the account was
        not found spent out a moment ago, and none was refused lately (near zero the
        broker keeps the last tokens for the regions whose clients wait)."""
        now = self.clock.now
        return not slot.asking and now >= slot.spent_out_until_s and now >= slot.refused_until_s

    # faults

    def lose_redis(self, region_name: str, down_s: float) -> None:
        """The region's Redis loses everything, slices and unshipped events alike."""
        region = self.regions[region_name]
        old = region.incarnation
        region.incarnation += 1
        region.slots.clear()
        region.active.clear()
        region.outbox = []
        region.down_until_s = self.clock.now + down_s
        self.clock.after(down_s, self._send, region_name, HOME, self._relearn_at_home, region,
                         region.incarnation)  # fmt: skip
        if self.close_via_queue:
            region.outbox.append(Close(region_name, old))
        else:
            self._send(region_name, HOME, self._close_unspent, region_name, old)

    # the region's agent and relay

    def _tick(self, region: Region) -> None:
        now = self.clock.now
        if now >= region.down_until_s:
            for account in list(region.active):
                self._look_after(region, account, region.slots[account], now)
        self.clock.after(TICK_S, self._tick, region)

    def _look_after(self, region: Region, account: str, slot: Slot, now: float) -> None:
        if not (slot.spent or slot.demand.per_s or slot.asking) and (
            slot.tokens == self.policy.standby and now - slot.last_used_s < 3600
        ):
            del region.active[account]  # a quiet standby: looked after again once used
            return
        slot.demand.observe(slot.spent, TICK_S, self.policy.demand_weight)
        slot.spent = 0
        idle_s = now - slot.last_used_s
        if back := to_return(self.policy, slot.tokens, idle_s, slot.demand.per_s, False):
            self._give_back(region, account, slot, back)
        elif self._may_refill(slot) and idle_s < 3600:
            asked = wanted(self.policy, slot.tokens, slot.demand.per_s, slot.backlog)
            if asked:
                self._ask(region, account, slot, asked)
        if not slot.tokens and not slot.asking and idle_s >= 3600:
            del region.active[account]

    def _give_back(self, region: Region, account: str, slot: Slot, tokens: int) -> None:
        slot.tokens -= tokens  # lowered first: what goes back can no longer be spent
        slot.seq += 1
        region.outbox.append(self._event(account, region, tokens, RETURN, slot.seq))

    def _relay(self, region: Region) -> None:
        self._ship(region)
        self.clock.after(RELAY_S, self._relay, region)

    def _ship(self, region: Region) -> None:
        """Ship up to 100 events as one FIFO message, in order; a lost acknowledgement
        ships them again (a duplicate), and some messages are delivered twice."""
        up = self.clock.now >= region.down_until_s
        if region.outbox and up and not (self.network.cut(region.name) or self.network.cut(HOME)):
            message = tuple(region.outbox[:100])
            if self.clock.rng.random() >= self.network.loss:
                del region.outbox[: len(message)]
            latency = self.network.latency_s(region.name, HOME)
            region.fifo_tail_s = max(region.fifo_tail_s, self.clock.now + latency)
            delay = region.fifo_tail_s - self.clock.now
            self.clock.after(delay, self._apply, region.name, message)
            if self.clock.rng.random() < self.duplicates:
                again = delay + self.clock.rng.uniform(*REDELIVER_S)
                self.clock.after(again, self._apply, region.name, message)

    def _ask(self, region: Region, account: str, slot: Slot, asked: int) -> None:
        """Ask the broker; urgent when clients were refused for want of tokens."""
        slot.asking, slot.urgent, slot.recheck = next(self._numbers), slot.backlog > 0, False
        self._send_ask(region, account, slot.asking, asked, slot.urgent, region.incarnation)

    def _ask_urgently(self, region: Region, account: str, slot: Slot, price: int) -> None:
        asked = wanted(self.policy, slot.tokens, slot.demand.per_s, slot.backlog)
        self._ask(region, account, slot, max(price - slot.tokens, asked))

    def _send_ask(
        self, region: Region, account: str, number: int, asked: int, urgent: bool,
        incarnation: int,
    ) -> None:  # fmt: skip
        if self._asking(region, account, number, incarnation) is None:
            return  # answered, or this Redis is gone
        self._send(region.name, HOME, self._broker, region.name, account, number, asked,
                   urgent, incarnation)  # fmt: skip
        self.clock.after(
            RETRY_S, self._send_ask, region, account, number, asked, urgent, incarnation
        )

    @staticmethod
    def _asking(region: Region, account: str, number: int, incarnation: int) -> Slot | None:
        """The slot still waiting for grant `number`: None once answered, or once this
        Redis is gone (a new incarnation)."""
        slot = region.slots.get(account)
        if region.incarnation != incarnation or slot is None or slot.asking != number:
            return None
        return slot

    def _granted(
        self, region: Region, account: str, number: int, tokens: int, nothing_left: bool,
        incarnation: int,
    ) -> None:  # fmt: skip
        slot = self._asking(region, account, number, incarnation)
        if slot is None:
            return
        urgent, slot.asking = slot.urgent, 0
        slot.tokens += tokens
        slot.spent_out_until_s = self.clock.now + SPENT_OUT_KEPT_S if nothing_left else 0.0
        region.active[account] = None
        if tokens:
            slot.backlog = 0
        else:
            slot.refused_until_s = self.clock.now + REFUSED_BACKOFF_S
        self._serve_held(region, account, slot)
        if (
            slot.held
            and not (slot.asking or self._spent_out(slot))
            and (slot.recheck or not urgent)
        ):
            # The answer was to a refill asked before these requests waited (not urgent:
            # near zero it gets nothing), or tokens came back to the account after the
            # broker answered: ask again for them.
            slot.backlog = sum(held.price for held in slot.held)
            self._ask_urgently(region, account, slot, slot.held[0].price)

    def _credited(self, region: Region, account: str) -> None:
        """The account has tokens again (a credit, or another region gave some back):
        a region that wants some asks now, not at its next request or tick."""
        slot = region.slots.get(account)
        if slot is None or self.clock.now < region.down_until_s:
            return
        slot.spent_out_until_s = slot.refused_until_s = 0.0
        if slot.asking:
            slot.recheck = True
        else:
            asked = wanted(self.policy, slot.tokens, slot.demand.per_s, slot.backlog)
            if asked:
                self._ask(region, account, slot, asked)

    def _starve(self, region: Region, account: str) -> None:
        """Another region waits for this account's tokens: what this one can spare goes
        back now."""
        slot = region.slots.get(account)
        if slot is None or not slot.tokens:
            return
        idle_s = self.clock.now - slot.last_used_s
        if back := to_return(self.policy, slot.tokens, idle_s, slot.demand.per_s, True):
            self._give_back(region, account, slot, back)
            self._ship(region)  # another region waits for it: no linger

    def _relearn(self, region: Region, incarnation: int) -> None:
        """A Redis started again after a loss: the broker names the accounts the region
        held slices for, and the agent keeps their standby again."""
        if region.incarnation != incarnation:
            return
        for account, leases in self.leases.items():
            if any(holder == region.name for holder, _ in leases):
                region.slot(account).last_used_s = self.clock.now

    # the home region: broker and ledger over MongoDB

    def _broker(
        self, region: str, account: str, number: int, asked: int, urgent: bool, incarnation: int
    ) -> None:
        """One conditional update of the account, idempotent by grant number."""
        books, leases = self.books[account], self.leases[account]
        key = (account, region, incarnation, number)
        if key not in self.grants:
            asks = self.recent_asks[account]
            asks[region] = self.clock.now
            asking = sum(1 for at in asks.values() if self.clock.now - at < 2 * TICK_S)
            tokens = grant(self.policy, asked, books.balance - books.leased, asking, urgent)
            self.grants[key] = tokens
            books.leased += tokens
            books.broker_calls += 1
            leases[(region, incarnation)] += tokens
            if tokens < asked and urgent:
                self.waiting[account][region] = None
                for holder, _ in [lease for lease, left in leases.items() if left > 0]:
                    if holder != region:
                        self._send(HOME, holder, self._starve, self.regions[holder], account)
        tokens = self.grants[key]
        elsewhere = books.leased - leases[(region, incarnation)]
        nothing_left = not tokens and books.balance == books.leased and not elsewhere
        self._send(HOME, region, self._granted, self.regions[region], account, number, tokens,
                   nothing_left, incarnation)  # fmt: skip

    def _relearn_at_home(self, region: Region, incarnation: int) -> None:
        self._send(HOME, region.name, self._relearn, region, incarnation)

    def _apply(self, region: str, message: tuple[Event | Close, ...]) -> None:
        events = [item for item in message if isinstance(item, Event)]
        for item in message:
            if isinstance(item, Close):
                self._close_spent(item)
        positions = {
            e.account: self.positions.setdefault(e.account, Position(0, 0)) for e in events
        }
        result = plan(events, positions)
        if result.held:
            self.clock.after(REDELIVER_S[0], self._apply, region, message)
        for update in result.updates:
            self.positions[update.account] = update.end
            for event in update.events:
                account = event.account.split("@")[0]
                books = self.books[account]
                books.leased -= event.amount
                self.leases[account][(region, event.epoch)] -= event.amount
                if event.reason != RETURN:
                    books.balance -= event.amount
                elif self.waiting[account]:
                    for waiter in self.waiting.pop(account):
                        self._send(HOME, waiter, self._credited, self.regions[waiter], account)
        # Stranded events (of an incarnation closed meanwhile) were counted by the close.

    def _close_spent(self, close: Close) -> None:
        lease = (close.region, close.incarnation)
        for account, leases in self.leases.items():
            if left := leases.get(lease, 0):
                books = self.books[account]
                books.balance -= left
                books.leased -= left
                books.lost += left
                leases[lease] = 0
                self._move_to_next_incarnation(account, close)

    def _move_to_next_incarnation(self, account: str, close: Close) -> None:
        """The ledger's position leaves the closed incarnation, so a late event of it is
        stranded (already counted by the close), never applied again."""
        key = f"{account}@{close.region}"
        position = self.positions.get(key, Position(0, 0))
        if position.epoch <= close.incarnation:
            self.positions[key] = Position(
                close.incarnation + 1, 0, (*position.ended, (position.epoch, position.seq))
            )

    def _close_unspent(self, region: str, incarnation: int) -> None:
        """The mutant: the broker closes the leases at once and takes what is left as
        unspent, before the region's last debits have arrived."""
        for account, leases in self.leases.items():
            if left := leases.get((region, incarnation), 0):
                self.books[account].leased -= left
                leases[(region, incarnation)] = 0

    # plumbing

    def _send(self, source: str, target: str, action: Callable[..., None], *args: object) -> None:
        if self.network.reaches(source, target):
            self.clock.after(self.network.latency_s(source, target), action, *args)

    def _event(self, account: str, region: Region, amount: int, reason: str, seq: int) -> Event:
        return Event(
            id=f"e{next(self._ids)}", type="debit", account=f"{account}@{region.name}",
            amount=amount, epoch=region.incarnation, seq=seq, reason=reason, request_id="",
            at="",
        )  # fmt: skip

    def slices(self, account: str) -> int:
        return sum(r.slots[account].tokens for r in self.regions.values() if account in r.slots)
