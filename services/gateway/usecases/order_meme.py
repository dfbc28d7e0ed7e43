"""Ordering a meme: charge, generate, deliver, then confirm, or refund whatever failed.

A charge stays pending until its answer is written (then it is confirmed) or its meme
fails (then it is refunded, and the refund shipped to SQS, before the error is
answered). A charge whose gateway died in between is refunded by the sweeper, so a
client is never charged for a meme it did not get. Just before the answer is written,
a charge near its deadline is held from the sweeper (one far from it, the common case,
needs no call); a handler frozen past its deadline (a paused process) finds it refunded
already and answers 504 instead of giving the meme away.
The route authenticates, parses and chooses the kind; `deliver` writes the answer, so
a client that goes away while it is written is a failure like any other.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import Counter

from services.gateway.adapters.meme_client import Meme
from services.gateway.domain.params import MemeRequest
from services.gateway.drain import Drain
from services.gateway.usecases.refunds import log_refund, refund_durably
from shared import tracing
from shared.accounting.bank import (
    Charge,
    NotHydrated,
    Outcome,
    Shipping,
    Status,
    UnknownAccount,
)
from shared.accounting.prices import price_of, rate_limit_for
from shared.auth import Principal
from shared.contract import Kind
from shared.errors import ApiError
from shared.settings import RateLimit, Settings
from shared.stores import STORE_UNAVAILABLE

TOKENS_CHARGED = Counter("maas_tokens_charged_total", "Tokens charged for memes", ["kind"])
TOKENS_REFUNDED = Counter("maas_tokens_refunded_total", "Tokens refunded after failures", ["kind"])
REFUNDS = Counter(
    "maas_refunds_total",
    "Refunds of failed memes by outcome: applied, left_to_ledger (Redis's balance does not "
    "hold the debit), nothing_to_refund (refunded before), deferred (left to the sweeper)",
    ["kind", "outcome"],
)
CONFIRM_FAILURES = Counter(
    "maas_confirm_failures_total", "Delivered memes whose charge could not be confirmed"
)

CONFIRM_FIRST_RETRY_S = 0.05
CONFIRM_LAST_RETRY_S = 0.5

# The meme, its price and the balance after the charge -> the answer is written.
Deliver = Callable[[Meme, int, int], Awaitable[None]]


class MemeCharges(Protocol):
    """What ordering a meme needs of the bank (`TokenBank`; proven alike by the contract
    suite in tests/contracts/ for the in-memory bank the unit tests use)."""

    async def charge(
        self,
        account: str,
        price: int,
        limit: RateLimit | None,
        reason: str,
        request_id: str,
        refundable_after_s: float,
    ) -> tuple[Outcome, Charge | None]: ...

    async def refund(
        self, charge: Charge, undelivered: bool = False, overdue: bool = False
    ) -> Outcome: ...

    async def refund_shipped(self, charge: Charge, entry_id: str, timeout_s: float) -> Shipping: ...

    async def confirm(self, charge: Charge) -> None: ...

    async def hold(self, charge: Charge, seconds: float) -> bool: ...


class MemeSource(Protocol):
    """What ordering a meme needs of the meme service (`MemeClient`)."""

    async def generate(self, params: MemeRequest, kind: Kind, request_id: str) -> Meme: ...


log = logging.getLogger(__name__)


async def order_meme(
    *,
    bank: MemeCharges,
    memes: MemeSource,
    drain: Drain,
    settings: Settings,
    principal: Principal,
    params: MemeRequest,
    kind: Kind,
    request_id: str,
    deliver: Deliver,
) -> None:
    price = price_of(kind, settings)
    # Before the charge is asked for: its deadline in Redis is at least this far away.
    deadline = asyncio.get_running_loop().time() + settings.refundable_after_s(kind)
    try:
        with tracing.span("charge", {"maas.kind": kind, "maas.tokens": price}):
            charged, charge = await bank.charge(
                principal.account,
                price,
                rate_limit_for(principal.roles, settings),
                f"meme:{kind}",
                request_id,
                settings.refundable_after_s(kind),
            )
    except UnknownAccount:
        raise ApiError("unknown_account", "no account for this token") from None
    except NotHydrated:
        raise ApiError(
            "upstream_unavailable",
            "balances are being restored; retry (nothing was charged)",
            headers={"Retry-After": "1"},
        ) from None
    if charged.status == Status.RATE_LIMITED:
        retry_after = max(1, math.ceil(charged.retry_after_ms / 1000))
        raise ApiError(
            "rate_limited",
            f"too many requests; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
    if charged.status == Status.IN_TRANSIT:
        raise ApiError(
            "tokens_in_transit",
            "this region's share of the account's tokens is spent and more is on its way "
            "from another region; retry in 1 s (nothing was charged)",
            headers={"Retry-After": "1"},
            retry_after=1,
        )
    if charged.status == Status.INSUFFICIENT or charge is None:
        raise ApiError(
            "insufficient_tokens",
            f"a {kind} meme costs {price} tokens; the balance is {charged.balance}",
            headers={"X-Tokens-Remaining": str(charged.balance)},
            balance=charged.balance,
            price=price,
        )
    TOKENS_CHARGED.labels(kind).inc(price)
    with drain.holding(charge):
        try:
            meme = await drain.unless_closed(memes.generate(params, kind, request_id))
            await hold_for_delivery(bank, charge, settings.charge_settle_margin_s, deadline)
            await deliver(meme, price, charged.balance)
        except BaseException as failure:  # an upstream error, a cancelled handler, a lost client
            with tracing.span("refund", {"maas.reason": refund_reason(failure)}):
                await asyncio.shield(
                    refund(bank, charge, kind, failure, settings.refund_durable_within_s)
                )
            raise
        await confirm(bank, charge, settings.charge_settle_margin_s)


async def hold_for_delivery(
    bank: MemeCharges, charge: Charge, margin_s: float, deadline: float
) -> None:
    """Keep the sweeper off the charge while the answer is written, or raise 504.

    `deadline` (loop time) is when the charge became the sweeper's at the earliest: it
    was taken before the charge was asked for, and Redis counts the charge's deadline
    from its own later clock. A meme back with `margin_s` to spare before it (the
    common case: the meme service answered within its timeout) needs nothing more; this
    check and the write that follows run in one step of the event loop. Otherwise the
    charge is held for `margin_s`, and the clock is read again once the hold's answer is
    back, in the same step as the write: a handler frozen (or starved) since it asked
    for the hold may have let the hold lapse, and the sweeper may have the charge.
    """
    loop = asyncio.get_running_loop()
    asked = loop.time()
    if asked + margin_s <= deadline:
        return
    if not await bank.hold(charge, margin_s) or loop.time() - asked >= margin_s:
        raise ApiError(
            "upstream_timeout", "the meme took longer than its charge may wait; nothing was charged"
        )


async def refund(
    bank: MemeCharges, charge: Charge, kind: str, failure: BaseException, within_s: float
) -> None:
    """Give the charge back before the error is answered (durably: see refunds.py); a
    refund that fails stays pending for the sweeper."""
    try:
        refunded = await refund_durably(bank, charge, sweeper=False, within_s=within_s)
    except Exception:
        log.warning("refund failed; the sweeper will refund it", exc_info=True)
        REFUNDS.labels(kind, "deferred").inc()
        if isinstance(failure, ApiError):
            failure.details["refund"] = "pending"
        return
    REFUNDS.labels(kind, refunded.status.name.lower()).inc()
    if refunded.status == Status.APPLIED:
        TOKENS_REFUNDED.labels(kind).inc(charge.price)
    log_refund(charge, refund_reason(failure), refunded)
    if isinstance(failure, ApiError):
        failure.headers["X-Tokens-Remaining"] = str(refunded.balance)
        failure.details["tokens_remaining"] = refunded.balance


# What failed, as a refund line names it.
REFUND_REASONS = {
    "upstream_timeout": "upstream_timeout",
    "upstream_error": "meme_service_5xx",
    "upstream_unavailable": "ai_unavailable",
    "shutting_down": "drain_window",
}


def refund_reason(failure: BaseException) -> str:
    if isinstance(failure, ApiError):
        return REFUND_REASONS.get(failure.code, failure.code)
    if isinstance(failure, STORE_UNAVAILABLE):
        return "store_unavailable"  # Redis out of reach between the charge and the answer
    if isinstance(failure, ConnectionError | asyncio.CancelledError):
        return "client_gone"  # the answer could not be written, or the handler was cancelled
    return type(failure).__name__


async def confirm(bank: MemeCharges, charge: Charge, within_s: float) -> None:
    """The answer is written: clear the pending record.

    Tried again until the hold on the charge runs out (`within_s`), so a Redis restart
    or failover of a few seconds does not turn a delivered meme into a refund. If it
    still fails, the record stays and the sweeper refunds a meme that was delivered: the
    client gets it free, which is our loss, never the client's (counted).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    pause = CONFIRM_FIRST_RETRY_S
    while True:
        try:
            await bank.confirm(charge)
            return
        except Exception:
            if loop.time() + pause >= deadline:
                log.warning(
                    "confirming a delivered meme failed; it will be refunded", exc_info=True
                )
                CONFIRM_FAILURES.inc()
                return
        await asyncio.sleep(pause)
        pause = min(2 * pause, CONFIRM_LAST_RETRY_S)
