"""Ordering a meme against the contract-proven in-memory bank: every failure refunds once.

These are the money paths the full-stack tests reach by freezing or killing the meme
service; here each is exact and takes milliseconds. `tests/contracts/` proves the
in-memory bank behaves as `TokenBank` does on Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import redis.exceptions

from services.gateway.adapters.meme_client import Meme
from services.gateway.domain.params import MemeRequest
from services.gateway.drain import Drain
from services.gateway.usecases.order_meme import order_meme, refund_reason
from shared.accounting.bank import Charge, Outcome
from shared.auth import Principal
from shared.contract import Kind
from shared.errors import ApiError
from shared.settings import RateLimit, Settings
from tests.fakes.bank import InMemoryBank
from tests.metrics import sample

SETTINGS = Settings(
    price_text=1, price_ai=2, rate_limits={"default": RateLimit(rate=1000, burst=1000)}
)
SHORT_HOLD = SETTINGS.model_copy(update={"charge_settle_margin_s": 0.2})
MEME = Meme({"text": "a meme", "location": None})
PARAMS = MemeRequest("cats", None, None, None, "json")


@dataclass
class Memes:
    """The meme service's side of the order, as a test scripts it."""

    make: Callable[[], Awaitable[Meme]]
    calls: int = 0

    async def generate(self, params: MemeRequest, kind: Kind, request_id: str) -> Meme:
        self.calls += 1
        return await self.make()


def answering(meme: Meme = MEME) -> Memes:
    async def make() -> Meme:
        return meme

    return Memes(make)


def failing(error: BaseException) -> Memes:
    async def make() -> Meme:
        raise error

    return Memes(make)


@dataclass
class Delivered:
    answers: list[tuple[Meme, int, int]] = field(default_factory=list)
    fails_with: BaseException | None = None

    async def __call__(self, meme: Meme, price: int, remaining: int) -> None:
        if self.fails_with is not None:
            raise self.fails_with
        self.answers.append((meme, price, remaining))


async def order(
    bank: InMemoryBank,
    memes: Memes,
    *,
    kind: Kind = "text",
    drain: Drain | None = None,
    deliver: Delivered | None = None,
    roles: frozenset[str] = frozenset(),
    settings: Settings = SETTINGS,
) -> Delivered:
    delivered = deliver or Delivered()
    await order_meme(
        bank=bank,
        memes=memes,
        drain=drain or Drain(25.0),
        settings=settings,
        principal=Principal("alice", roles, 0.0),
        params=PARAMS,
        kind=kind,
        request_id="req-1",
        deliver=delivered,
    )
    return delivered


async def funded(balance: int = 10) -> InMemoryBank:
    bank = InMemoryBank()
    await bank.open("alice", balance)
    return bank


async def test_a_delivered_meme_is_charged_once_and_its_charge_is_final() -> None:
    bank = await funded(10)
    delivered = await order(bank, answering(), kind="ai", roles=frozenset({"ai"}))
    assert delivered.answers == [(MEME, 2, 8)]
    assert await bank.balance("alice") == 8
    assert bank.pending == {}, "a delivered meme's charge is confirmed"


@pytest.mark.parametrize(
    "error",
    [
        ApiError("upstream_error", "the meme service answered 500"),  # 502
        ApiError("upstream_timeout", "the meme generator timed out"),  # 504
        ApiError("upstream_unavailable", "AI memes are unavailable right now"),  # 503
        ConnectionResetError("the meme service went away"),
    ],
)
async def test_a_meme_that_fails_is_refunded_and_the_error_says_the_balance(
    error: BaseException,
) -> None:
    bank = await funded(10)
    refunds = sample("maas_refunds_total", kind="text", outcome="applied")
    with pytest.raises(type(error)) as raised:
        await order(bank, failing(error))
    assert raised.value is error
    assert await bank.balance("alice") == 10
    assert bank.pending == {}
    assert sample("maas_refunds_total", kind="text", outcome="applied") == refunds + 1
    if isinstance(error, ApiError):
        assert error.headers["X-Tokens-Remaining"] == "10"
        assert error.details["tokens_remaining"] == 10


async def test_a_client_gone_while_the_answer_is_written_is_refunded() -> None:
    bank = await funded(10)
    deliver = Delivered(fails_with=ConnectionResetError("client went away"))
    with pytest.raises(ConnectionResetError):
        await order(bank, answering(), deliver=deliver)
    assert await bank.balance("alice") == 10
    assert bank.pending == {}


async def test_a_cancelled_handler_still_refunds() -> None:
    bank = await funded(10)
    started = asyncio.Event()

    async def hang() -> Meme:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(order(bank, Memes(hang)))
    await started.wait()
    assert await bank.balance("alice") == 9
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await bank.balance("alice") == 10
    assert bank.pending == {}


async def test_the_drain_window_closing_answers_503_and_refunds() -> None:
    bank = await funded(10)
    drain = Drain(0.05)
    started = asyncio.Event()

    async def slow() -> Meme:
        started.set()
        await asyncio.sleep(10)
        return MEME

    task = asyncio.create_task(order(bank, Memes(slow), drain=drain))
    await started.wait()
    drain.begin()
    with pytest.raises(ApiError) as raised:
        await asyncio.wait_for(task, timeout=2)
    assert (raised.value.status, raised.value.code) == (503, "shutting_down")
    assert raised.value.headers["Retry-After"] == "1"
    assert await bank.balance("alice") == 10
    assert bank.pending == {}


async def test_a_meme_that_finishes_inside_the_drain_window_is_delivered() -> None:
    bank = await funded(10)
    drain = Drain(5.0)
    drain.begin()
    delivered = await order(bank, answering(), drain=drain)
    assert delivered.answers == [(MEME, 1, 9)]
    assert await bank.balance("alice") == 9


class RefundFails(InMemoryBank):
    """Redis refuses refunds (it is restarting) `failures` times, then takes them."""

    failures = 1_000_000
    tried = 0

    async def refund(
        self, charge: Charge, undelivered: bool = False, overdue: bool = False
    ) -> Outcome:
        self.tried += 1
        if self.tried <= self.failures:
            raise ConnectionError("Redis is failing over")
        return await super().refund(charge, undelivered, overdue)


SHORT_REFUND_WAIT = SETTINGS.model_copy(update={"refund_durable_within_s": 0.3})


async def test_a_refund_that_fails_leaves_the_charge_pending_for_the_sweeper() -> None:
    bank = RefundFails()
    await bank.open("alice", 10)
    deferred = sample("maas_refunds_total", kind="text", outcome="deferred")
    error = ApiError("upstream_error", "the meme service answered 500")
    with pytest.raises(ApiError) as raised:
        await order(bank, failing(error), settings=SHORT_REFUND_WAIT)
    assert raised.value.details["refund"] == "pending"
    assert await bank.balance("alice") == 9
    (charge,) = bank.pending.values()
    assert (charge.account, charge.price, charge.reason) == ("alice", 1, "meme:text")
    assert sample("maas_refunds_total", kind="text", outcome="deferred") == deferred + 1


async def test_a_refund_is_tried_again_while_redis_is_out_of_reach() -> None:
    """Found by `make chaos ROLLBACK=1`: a refund refused while Redis restarted was left
    to the sweeper, but Redis came back from a snapshot taken before the charge, so no
    pending record was left to sweep, while MongoDB had the debit: the client paid for a
    504. Only the handler knows its meme failed, so it keeps trying for a while."""
    bank = RefundFails()
    bank.failures = 2
    await bank.open("alice", 10)
    error = ApiError("upstream_timeout", "the meme generator timed out")
    with pytest.raises(ApiError) as raised:
        await order(bank, failing(error), settings=SHORT_REFUND_WAIT)
    assert raised.value.details["tokens_remaining"] == 10
    assert await bank.balance("alice") == 10
    assert bank.pending == {}


class ConfirmFails(InMemoryBank):
    async def confirm(self, charge: Charge) -> None:
        raise ConnectionError("Redis is failing over")


async def test_a_confirm_that_fails_still_answers_and_is_counted() -> None:
    bank = ConfirmFails()
    await bank.open("alice", 10)
    failures = sample("maas_confirm_failures_total")
    delivered = await order(bank, answering(), settings=SHORT_HOLD)
    assert delivered.answers == [(MEME, 1, 9)]
    assert len(bank.pending) == 1, "left for the sweeper, which refunds it: our loss"
    assert sample("maas_confirm_failures_total") == failures + 1


class ConfirmFailsTwice(InMemoryBank):
    """Redis restarting: the first two confirmations fail, the third goes through."""

    failures = 2

    async def confirm(self, charge: Charge) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Redis is restarting")
        await super().confirm(charge)


async def test_a_confirm_is_tried_again_while_the_charge_is_held() -> None:
    bank = ConfirmFailsTwice()
    await bank.open("alice", 10)
    failures = sample("maas_confirm_failures_total")
    delivered = await order(bank, answering())
    assert delivered.answers == [(MEME, 1, 9)]
    assert bank.pending == {}, "confirmed: the sweeper has nothing to refund"
    assert sample("maas_confirm_failures_total") == failures


class HoldAnsweredLate(InMemoryBank):
    """The handler gets the hold's answer back only after the hold has run out (a
    process frozen, or an event loop starved, while the answer waited in its socket)."""

    async def hold(self, charge: Charge, seconds: float) -> bool:
        held = await super().hold(charge, seconds)
        await asyncio.sleep(seconds)
        return held


class CountsHolds(InMemoryBank):
    holds_asked = 0

    async def hold(self, charge: Charge, seconds: float) -> bool:
        self.holds_asked += 1
        return await super().hold(charge, seconds)


def answering_after(seconds: float) -> Memes:
    """A meme that comes back only after `seconds` (a slow answer, or a handler starved
    or frozen while it waited)."""

    async def make() -> Meme:
        await asyncio.sleep(seconds)
        return MEME

    return Memes(make)


# The charge's window (the meme's timeout, then the margin) is 0.25 s: a meme back after
# 0.05 s leaves less than the margin before the charge's deadline.
LATE = SHORT_HOLD.model_copy(update={"meme_timeout_s": 0.05})


async def test_a_meme_back_well_before_its_charges_deadline_is_written_without_a_hold() -> None:
    bank = CountsHolds()
    await bank.open("alice", 10)
    delivered = await order(bank, answering(), settings=LATE)
    assert (delivered.answers, bank.holds_asked) == ([(MEME, 1, 9)], 0)
    assert bank.pending == {}


async def test_a_meme_back_near_its_charges_deadline_is_held_before_it_is_written() -> None:
    bank = CountsHolds()
    await bank.open("alice", 10)
    delivered = await order(bank, answering_after(0.1), settings=LATE)
    assert (delivered.answers, bank.holds_asked) == ([(MEME, 1, 9)], 1)


async def test_a_hold_that_lapsed_before_the_handler_got_back_to_it_is_not_used() -> None:
    bank = HoldAnsweredLate()
    await bank.open("alice", 10)
    delivered = Delivered()
    with pytest.raises(ApiError) as raised:
        await order(bank, answering_after(0.1), deliver=delivered, settings=LATE)
    assert (raised.value.status, delivered.answers) == (504, [])
    assert await bank.balance("alice") == 10


async def test_too_few_tokens_is_402_and_nothing_is_made() -> None:
    bank = await funded(1)
    memes = answering()
    with pytest.raises(ApiError) as raised:
        await order(bank, memes, kind="ai", roles=frozenset({"ai"}))
    error = raised.value
    assert (error.status, error.code) == (402, "insufficient_tokens")
    assert (error.details["balance"], error.details["price"]) == (1, 2)
    assert error.headers["X-Tokens-Remaining"] == "1"
    assert memes.calls == 0
    assert await bank.balance("alice") == 1


async def test_over_the_bucket_is_429_with_a_whole_second_retry_after() -> None:
    bank = await funded(100)
    memes = answering()
    strict = Settings(rate_limits={"default": RateLimit(rate=0.5, burst=1)})
    await order(bank, memes, settings=strict)
    with pytest.raises(ApiError) as raised:
        await order(bank, memes, settings=strict)
    assert (raised.value.status, raised.value.code) == (429, "rate_limited")
    assert raised.value.headers["Retry-After"] == "2"
    assert memes.calls == 1
    assert await bank.balance("alice") == 99


async def test_an_account_the_bank_does_not_know_is_refused_without_a_charge() -> None:
    memes = answering()
    with pytest.raises(ApiError) as raised:
        await order(InMemoryBank(), memes)
    assert raised.value.code == "unknown_account"
    assert memes.calls == 0


async def test_a_meme_that_fails_after_redis_lost_its_charge_leaves_the_refund_to_the_ledger() -> (
    None
):
    """A failover between the charge and the failure: only the handler knows the meme
    failed, so it still sends the refund, for the ledger to grant where it counted the
    charge; Redis, which no longer has the debit, gives nothing back."""
    bank = await funded(10)
    left = sample("maas_refunds_total", kind="text", outcome="left_to_ledger")

    async def make() -> Meme:
        (charge,) = bank.pending.values()
        bank.lose_charge(charge)
        raise ApiError("upstream_error", "the meme service answered 500")

    with pytest.raises(ApiError) as raised:
        await order(bank, Memes(make))
    assert await bank.balance("alice") == 10
    assert [tokens for _, tokens in bank.refunds] == [0]
    assert raised.value.details["tokens_remaining"] == 10
    assert sample("maas_refunds_total", kind="text", outcome="left_to_ledger") == left + 1


async def test_a_refund_redis_lost_before_sqs_had_it_is_issued_again_before_the_error() -> None:
    """Found by `make chaos ROLLBACK=1`: Redis acknowledged the refund, then came back
    from a snapshot taken before it (a failover to a replica behind) while the charge had
    reached MongoDB already: the client paid for a failed meme. The handler waits for the
    refund to reach SQS and, finding it lost, refunds again."""
    bank = await funded(10)
    bank.refunds_to_lose = 1
    reissued = sample("maas_refunds_reissued_total")
    with pytest.raises(ApiError) as raised:
        await order(bank, failing(ApiError("upstream_error", "the meme service answered 500")))
    assert await bank.balance("alice") == 10
    assert [tokens for _, tokens in bank.refunds] == [1, 1], "the first was lost with Redis"
    assert raised.value.details["tokens_remaining"] == 10
    assert sample("maas_refunds_reissued_total") == reissued + 1


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (ApiError("upstream_timeout", "the meme service timed out"), "upstream_timeout"),
        (ApiError("upstream_error", "the meme service answered 500"), "meme_service_5xx"),
        (ApiError("shutting_down", "this gateway is shutting down"), "drain_window"),
        (ConnectionResetError("the client went away"), "client_gone"),
        (asyncio.CancelledError(), "client_gone"),
        (redis.exceptions.ConnectionError("Redis restarting"), "store_unavailable"),
    ],
)
def test_a_refund_line_names_what_failed(failure: BaseException, reason: str) -> None:
    assert refund_reason(failure) == reason
