"""Crediting purchased tokens: once per idempotency key, answered only once durable.

The billing team may retry blindly with the same key: a repeat gets the first answer,
from Redis's idempotency record or, once Redis lost it, from the credit record in
MongoDB. A credit is answered only after its event left Redis for SQS, so a 202 is
never lost with Redis's data.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from prometheus_client import Counter

from shared.accounting.bank import LiveAccount, Outcome, Shipping, Status, UnknownAccount
from shared.accounting.credits import FirstAnswer, fingerprint
from shared.accounting.regions import account_of, book_of, book_region
from shared.contract import MAX_BALANCE
from shared.errors import ApiError
from shared.stores import MongoDoc

CREDIT_DURABLE_WITHIN_S = 5.0

log = logging.getLogger(__name__)

TOKENS_CREDITED = Counter("maas_tokens_credited_total", "Tokens credited by the admin API")


class CreditBank(Protocol):
    """What crediting needs of the bank (`TokenBank`; the in-memory bank of the unit tests
    is proven alike by tests/contracts/)."""

    async def credit(
        self, account: str, amount: int, reason: str, idempotency_key: str, fingerprint: str
    ) -> Outcome: ...

    async def credit_shipped(
        self, account: str, idempotency_key: str, entry_id: str, timeout_s: float
    ) -> Shipping: ...

    async def live(self, account: str) -> LiveAccount: ...

    async def holds(self, account: str, epoch: int, seq: int) -> bool: ...


class CreditAnswers(Protocol):
    """The first answer to each key, kept beyond Redis (`CreditLog`)."""

    async def first_answer(self, account: str, key: str) -> MongoDoc | None: ...

    async def record(self, account: str, key: str, answer: FirstAnswer) -> None: ...


def idempotency_conflict() -> ApiError:
    return ApiError("idempotency_conflict", "this Idempotency-Key was used with a different body")


async def credit(
    bank: CreditBank, credits: CreditAnswers, account: str, key: str, amount: int, reason: str
) -> tuple[str, int]:
    """(the credit's event id, the balance it left) for this key's first request."""
    body_fingerprint = fingerprint(amount, reason)
    first = await credits.first_answer(account, key)
    answered = "replayed"
    if first is None:
        first = await apply_credit(bank, credits, account, key, amount, reason, body_fingerprint)
        answered = "new" if first.pop("applied") else "replayed"
    if first["fingerprint"] != body_fingerprint:
        raise idempotency_conflict()
    if not await bank.holds(account, first.get("epoch", 0), first.get("seq", 0)):
        # Redis lost the first credit (a failover to a replica behind): issue it there
        # again. The ledger counts it once: the same credit at its own position, or a
        # repeat of the key that is voided (see services/ledger/usecases/repeats.py).
        await apply_credit(bank, credits, account, key, amount, reason, body_fingerprint)
        answered = "issued_again"
    log.info(
        "credit",
        extra={"account": account, "key": key, "event_id": first["event_id"],
               "tokens": amount, "answer": answered},
    )  # fmt: skip
    tokens = first["tokens"]
    if tokens is None:  # applied by the ledger, its answer lost: today's balance instead
        tokens = (await bank.live(account)).balance
    return first["event_id"], tokens


async def apply_credit(
    bank: CreditBank,
    credits: CreditAnswers,
    account: str,
    key: str,
    amount: int,
    reason: str,
    digest: str,
) -> dict[str, Any]:
    try:
        outcome = await bank.credit(account, amount, reason, key, digest)
    except UnknownAccount:
        raise ApiError("not_found", f"no account {account!r}") from None
    if outcome.status == Status.CONFLICT:
        raise idempotency_conflict()
    if outcome.status == Status.OVER_LIMIT:
        raise ApiError(
            "balance_limit",
            f"this credit would take the balance over {MAX_BALANCE} tokens",
            balance=outcome.balance,
            limit=MAX_BALANCE,
        )
    if outcome.status == Status.APPLIED:
        TOKENS_CREDITED.inc(amount)
    shipping = await bank.credit_shipped(account, key, outcome.entry_id, CREDIT_DURABLE_WITHIN_S)
    if shipping != Shipping.SHIPPED:
        raise ApiError(
            "upstream_unavailable",
            "the credit is not durable yet; retry with the same Idempotency-Key",
            headers={"Retry-After": "1"},
        )
    await credits.record(
        account,
        key,
        FirstAnswer(digest, outcome.event_id, outcome.balance, outcome.epoch, outcome.seq),
    )
    return {
        "fingerprint": digest,
        "event_id": outcome.event_id,
        "tokens": outcome.balance,
        "applied": outcome.status == Status.APPLIED,
    }


async def credit_in_region(
    bank: CreditBank,
    credits: CreditAnswers,
    owner: str,
    book: str,
    key: str,
    amount: int,
    reason: str,
) -> str:
    """A credit where accounts are sliced by region: the key's first request credits the
    book of the region that took it (`owner`'s, `book`); another region answers with
    that one's first answer, once recorded. Returns the credit's event id."""
    if book_region(book) == owner:
        event_id, _ = await credit(bank, credits, book, key, amount, reason)
        return event_id
    first = await credits.first_answer(book_of(account_of(book), owner), key)
    if first is None:
        raise ApiError(
            "upstream_unavailable",
            f"this Idempotency-Key's first request is being applied in region {owner!r}; "
            "retry with the same key",
            headers={"Retry-After": "1"},
        )
    if first["fingerprint"] != fingerprint(amount, reason):
        raise idempotency_conflict()
    return str(first["event_id"])
