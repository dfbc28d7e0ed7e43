"""Charging in one region of several: the caller's book, kept filled from its pool.

A gateway with a region charges the account's book in that region's Redis
(`shared/accounting/regions.py`), so no request waits on another region while the slice
lasts. When a charge leaves the slice short of the region's demand for a few seconds,
a refill is asked for in the background; a charge that finds the slice empty waits for
an urgent one (bounded), and is refused only then: 402 when the account has no tokens
anywhere, else 503 `tokens_in_transit` (its tokens are in another region's slice).
Sizes are the policy's (`shared/accounting/slices.py`), from each book's demand as this
process sees it. What the region does not spend goes back to the pool (`run`): slices
idle for a while but for their standby, and what another region waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import Counter
from pymongo.errors import PyMongoError

from shared.accounting.accounts import BOOK_SEPARATOR
from shared.accounting.bank import (
    Charge,
    LiveAccount,
    Outcome,
    Shipping,
    Status,
    TokenBank,
    UnknownAccount,
)
from shared.accounting.credits import CreditLog, fingerprint
from shared.accounting.regions import Broker, Grant, account_of, book_region
from shared.accounting.slices import Demand, GrantPolicy, to_return, wanted
from shared.settings import RateLimit

log = logging.getLogger(__name__)
T = TypeVar("T")

GRANTS = Counter(
    "maas_slice_grants_total",
    "Grants asked of the account's pool, by outcome (granted, empty: nothing left to grant)",
    ["urgency", "outcome"],
)
TOKENS_GRANTED = Counter("maas_slice_tokens_granted_total", "Tokens granted to this region")
RETURNS = Counter(
    "maas_slice_returns_total",
    "Slices given back to the account's pool, by why (idle, wanted by another region)",
    ["why"],
)
TOKENS_RETURNED = Counter("maas_slice_tokens_returned_total", "Tokens given back to pools")
GRANT_REASON = "grant"
IDLE_LOOK_EVERY_S = 1.0
HINT_LOOK_EVERY_S = 0.25
DEMAND_LOOK_S = 0.1  # what was spent within less is added to the next look
DEMAND_MEMORY_S = 10.0  # a look after a longer lull weighs as one after this long
ASK_AGAIN_S = 0.2  # a charge waiting for tokens other regions give back asks this often
REFILL_REFUSED_S = 30.0  # a refill the broker refused (near zero) is not asked again sooner
LAST_LOOK_S = 0.25  # at least this long to learn whether the account has tokens elsewhere
CHARGED_LATELY_S = 10.0  # a credit to an account charged here this recently stays here
SPENT_OUT_KEPT_S = 1.0  # a 402 found in MongoDB answers the book's next refusals this long
STARVING_WITHIN_S = 10.0  # a region's hint that it waits for tokens is heeded this long
BOOKS_KEPT = 100_000  # the books whose demand this process follows, most recent first


@dataclass(slots=True)
class Book:
    """What this process knows of one book's demand."""

    demand: Demand = field(default_factory=Demand)
    spent: int = 0  # tokens charged since the demand was last observed
    used: float = field(default_factory=time.monotonic)  # its last charge here
    since: float = field(default_factory=time.monotonic)
    backlog: int = 0  # tokens refused for want of a slice since the last grant
    spent_out_until: float = 0.0  # the account had no tokens anywhere, as of a moment ago
    refill_refused_until: float = 0.0  # a refill got nothing: not asked again before then

    def observe(self, weight: float) -> float:
        """The demand, tokens a second, with what was spent since the last look: `weight`
        is a second's share, so looks a tenth of a second apart each weigh a tenth as
        much, and a burst raises the estimate within its first second."""
        now = time.monotonic()
        elapsed = now - self.since
        if elapsed >= DEMAND_LOOK_S:
            share = 1 - (1 - weight) ** min(elapsed, DEMAND_MEMORY_S)
            self.demand.observe(self.spent, elapsed, share)
            self.spent, self.since = 0, now
        return self.demand.per_s


class SliceBank:
    """`MemeCharges` for a gateway with a region (the others pass through to the bank)."""

    def __init__(self, bank: TokenBank, broker: Broker, credits: CreditLog, wait_s: float) -> None:
        self.bank = bank
        self.broker = broker
        self.credits = credits
        self.policy: GrantPolicy = broker.policy
        self.wait_s = wait_s
        self._books: OrderedDict[str, Book] = OrderedDict()
        self._refills: dict[str, asyncio.Task[None]] = {}
        self._after_answers: set[asyncio.Task[None]] = set()

    async def charge(
        self,
        account: str,
        price: int,
        limit: RateLimit | None,
        reason: str,
        request_id: str,
        refundable_after_s: float,
    ) -> tuple[Outcome, Charge | None]:
        """Charge the caller's book; an empty slice waits for an urgent grant first."""
        args = (price, limit, reason, request_id, refundable_after_s)
        outcome, charge = await self._charge_book(account, *args)
        book = self._book(account)
        if outcome.status == Status.INSUFFICIENT and time.monotonic() >= book.spent_out_until:
            book.backlog += price
            deadline = time.monotonic() + self.wait_s
            elsewhere: bool | None = None  # whether the account holds tokens elsewhere
            while True:
                refill = self._refill_soon(account, urgent=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(refill), max(0.0, deadline - time.monotonic())
                    )
                outcome, charge = await self._charge_book(account, *args)
                if outcome.status != Status.INSUFFICIENT or time.monotonic() >= deadline:
                    break
                if elsewhere is None:
                    # Short: the last tokens are in other regions. Tell them now, not
                    # after the wait, so what they give back can land within it; then
                    # ask again until it does (or the deadline).
                    elsewhere = await self._held_elsewhere(account, LAST_LOOK_S)
                    if not elsewhere:
                        break
                    self._hint_soon(account)
                await asyncio.sleep(max(0.0, min(ASK_AGAIN_S, deadline - time.monotonic())))
            if outcome.status == Status.INSUFFICIENT:
                if elsewhere is None:
                    look_s = max(LAST_LOOK_S, deadline - time.monotonic())
                    if elsewhere := await self._held_elsewhere(account, look_s):
                        self._hint_soon(account)
                if elsewhere:
                    return Outcome(Status.IN_TRANSIT, outcome.balance), None
                # Spent out everywhere: the next refusals within a second are answered
                # from here, not with a round of MongoDB calls each.
                book.spent_out_until = time.monotonic() + SPENT_OUT_KEPT_S
                book.backlog = 0
        if outcome.status == Status.APPLIED:
            book.spent += price
            book.used = time.monotonic()
            demand = book.observe(self.policy.demand_weight)
            refused = time.monotonic() < book.refill_refused_until
            if wanted(self.policy, outcome.balance, demand, book.backlog) and not refused:
                self._refill_soon(account)
        return outcome, charge

    async def live(self, account: str) -> LiveAccount:
        """The account's tokens and usage over every region: this region's live slice,
        the pool and the other regions' books."""
        here = await self._on_book(account, self.bank.live)
        there = await self.broker.elsewhere(account)
        return LiveAccount(
            here.balance + there.tokens, here.calls + there.calls,
            here.tokens_spent + there.tokens_spent,
        )  # fmt: skip

    async def by_region(self, account: str) -> dict[str, int]:
        """The account's slices: this region's live one, the others as MongoDB knows them."""
        books = await self.broker.books(account)
        here = await self.bank.balance(self.broker.book(account))
        if here is not None:
            books[self.broker.region] = here
        return books

    async def opened(self, account: str) -> str:
        """The account's book in this region, created if it had none."""
        await self.broker.open_book(account)
        return self.broker.book(account)

    def credited(self, account: str, tokens: int) -> None:
        """A credit landed in this region's slice (billing called this region). Unless
        the account was charged here lately, it goes on to the pool at once, after the
        answer, where the regions that spend it draw on it: billing calls from one place,
        clients are everywhere, and a slice where no one spends would otherwise hold the
        credit until its idle return while the client's region waits for it."""
        book = self._books.get(account)
        if book is not None and time.monotonic() - book.used < CHARGED_LATELY_S:
            return
        self._after_answer(self._pass_on(account, tokens))

    async def _pass_on(self, account: str, tokens: int) -> None:
        try:
            slice_tokens = await self.bank.balance(self.broker.book(account)) or 0
            passed = min(tokens, slice_tokens - self.policy.standby)
            if passed > 0:
                await self._give_back(account, passed, "credited")
        except Exception:
            log.warning("could not pass a credit on to the pool", exc_info=True)

    async def _held_elsewhere(self, account: str, within_s: float) -> bool:
        """Whether the account has tokens outside this region; when MongoDB cannot say
        within `within_s` (out of reach: a partition), the refusal is the one to retry
        (503), not the final one (402)."""
        try:
            found = await asyncio.wait_for(self.broker.elsewhere(account), within_s)
        except (PyMongoError, TimeoutError):
            return True
        return found.tokens > 0

    def _hint_soon(self, account: str) -> None:
        """Tell the other regions, after the answer: it waits on MongoDB."""
        self._after_answer(self._starve(account))

    def _after_answer(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` without holding the answer up; `close` lets it finish."""
        task = asyncio.create_task(work)
        self._after_answers.add(task)
        task.add_done_callback(self._after_answers.discard)

    async def refund(
        self, charge: Charge, undelivered: bool = False, overdue: bool = False
    ) -> Outcome:
        return await self.bank.refund(charge, undelivered, overdue)

    async def refund_shipped(self, charge: Charge, entry_id: str, timeout_s: float) -> Shipping:
        return await self.bank.refund_shipped(charge, entry_id, timeout_s)

    async def confirm(self, charge: Charge) -> None:
        await self.bank.confirm(charge)

    async def hold(self, charge: Charge, seconds: float) -> bool:
        return await self.bank.hold(charge, seconds)

    async def run(self, stop: asyncio.Event) -> None:
        """Give back what this region does not spend: idle slices but for their standby
        (looked at once a second), and what another region waits for (its hint, looked
        for four times a second: a charge there waits for it). Until `stop`."""
        next_idle_look = 0.0
        try:
            await self._follow_held_books()
        except Exception:
            log.warning("could not list the books this region holds", exc_info=True)
        while not stop.is_set():
            try:
                if time.monotonic() >= next_idle_look:
                    next_idle_look = time.monotonic() + IDLE_LOOK_EVERY_S
                    await self._give_back_idle()
                await self._give_back_wanted()
            except Exception:
                log.warning("giving slices back failed; trying again", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HINT_LOOK_EVERY_S)

    async def _follow_held_books(self) -> None:
        """Follow every book this region's Redis holds a slice of, as if charged now: a
        gateway that starts (a deploy, a crash) gives back what then goes unused, as the
        one before it would have. Once, at start; several gateways of a region may all
        give back, each only what the slice still holds past its standby."""
        keys = self.bank.keys
        pattern = keys.accounts_matching(f"*{BOOK_SEPARATOR}{self.broker.region}")
        found = 0
        async for key in self.bank.redis.scan_iter(match=pattern, count=1000):
            book = keys.account_in(key.decode() if isinstance(key, bytes) else key)
            if book_region(book) == self.broker.region:
                self._book(account_of(book))
                found += 1
        log.info("following the books this region holds", extra={"books": found})

    async def _give_back_idle(self) -> None:
        now = time.monotonic()
        for account, book in list(self._books.items()):
            idle_s = now - book.used
            if idle_s < self.policy.idle_return_s:
                continue
            slice_tokens = await self.bank.balance(self.broker.book(account)) or 0
            tokens = to_return(self.policy, slice_tokens, idle_s, book.demand.per_s, False)
            if tokens:
                await self._give_back(account, tokens, "idle")
            if slice_tokens - tokens <= self.policy.standby:
                self._books.pop(account, None)  # nothing more to give back until it is used

    async def _give_back_wanted(self) -> None:
        now = time.monotonic()
        for account in await self.broker.starving(STARVING_WITHIN_S):
            slice_tokens = await self.bank.balance(self.broker.book(account)) or 0
            if not slice_tokens:
                continue
            book = self._books.get(account) or Book(used=now - self.policy.idle_return_s)
            idle_s = now - book.used
            tokens = to_return(self.policy, slice_tokens, idle_s, book.demand.per_s, True)
            if tokens:
                await self._give_back(account, tokens, "wanted")

    async def _give_back(self, account: str, tokens: int, why: str) -> None:
        outcome = await self.bank.give_back(self.broker.book(account), tokens, f"return:{why}")
        if outcome.status == Status.APPLIED:
            RETURNS.labels(why).inc()
            TOKENS_RETURNED.inc(tokens)

    async def _starve(self, account: str) -> None:
        try:
            await self.broker.starve(account)
        except PyMongoError:
            log.warning("could not ask the other regions for tokens", exc_info=True)

    async def close(self) -> None:
        """Let the refills, hints and credits passed on under way finish (a grant half
        done is finished by the next refill)."""
        pending = (*self._refills.values(), *self._after_answers)
        await asyncio.gather(*pending, return_exceptions=True)

    async def _charge_book(
        self, account: str, price: int, limit: RateLimit | None, reason: str, request_id: str,
        refundable_after_s: float,
    ) -> tuple[Outcome, Charge | None]:  # fmt: skip
        args = (price, limit, reason, request_id, refundable_after_s)
        return await self._on_book(account, lambda book: self.bank.charge(book, *args))

    async def _on_book(self, account: str, act: Callable[[str], Awaitable[T]]) -> T:
        """`act` on the account's book in this region, created first if this is the
        account's first use here (the bank knows no such account yet)."""
        book = self.broker.book(account)
        try:
            return await act(book)
        except UnknownAccount:
            await self.broker.open_book(account)
            return await act(book)

    def _book(self, account: str) -> Book:
        book = self._books.get(account)
        if book is None:
            book = self._books[account] = Book()
            if len(self._books) > BOOKS_KEPT:
                self._books.popitem(last=False)
        else:
            self._books.move_to_end(account)
        return book

    def _refill_soon(self, account: str, urgent: bool = False) -> asyncio.Task[None]:
        """The book's refill under way, or a new one: one at a time per book in a process
        (several gateways of a region ask under the same grant number, and get one
        grant). A charge that waits for it waits with the others."""
        task = self._refills.get(account)
        if task is None:
            task = asyncio.create_task(self._refill(account, urgent))
            self._refills[account] = task
            task.add_done_callback(lambda _: self._refills.pop(account, None))
        return task

    async def _refill(self, account: str, urgent: bool) -> None:
        try:
            await self._ask(account, urgent)
        except Exception:
            log.warning("refill failed", extra={"account": account}, exc_info=True)

    async def _ask(self, account: str, urgent: bool) -> None:
        book_id = self.broker.book(account)
        last = await self.broker.last_grant(account)
        await self._credit_unless_held(book_id, last)
        book = self._book(account)
        balance = await self.bank.balance(book_id) or 0
        asked = wanted(self.policy, balance, book.observe(self.policy.demand_weight), book.backlog)
        urgent = urgent or book.backlog > 0  # a charge waits: it joined a refill under way
        if urgent:
            asked = max(asked, book.backlog)
        if asked <= 0:
            return
        granted = await self.broker.grant(account, last.number + 1, asked, urgent)
        urgency = "urgent" if urgent else "refill"
        if granted is None or not granted.tokens:
            GRANTS.labels(urgency, "empty").inc()
            if not urgent:  # near zero: the last tokens are for regions whose clients wait
                book.refill_refused_until = time.monotonic() + REFILL_REFUSED_S
            return
        await self._credit_unless_held(book_id, granted)
        GRANTS.labels(urgency, "granted").inc()
        TOKENS_GRANTED.inc(granted.tokens)
        book.backlog = 0

    async def _credit_unless_held(self, book_id: str, grant: Grant) -> None:
        """Credit a grant to the book once: not when Redis holds it (its idempotency
        record) nor MongoDB counted it (the ledger's claim on its key). A grant taken
        from the pool whose credit a crash or a lost Redis left undone is credited by
        the next refill; one counted twice anyway is voided by the ledger."""
        if not grant.number or not grant.tokens:
            return
        record = self.bank.keys.idempotency(book_id, grant.key)
        if await self.bank.redis.exists(record):
            return
        if await self.credits.first_answer(book_id, grant.key) is not None:
            return
        await self.bank.credit(
            book_id, grant.tokens, GRANT_REASON, grant.key, fingerprint(grant.tokens, GRANT_REASON)
        )
