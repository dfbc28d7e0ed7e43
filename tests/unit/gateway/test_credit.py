"""Crediting against the contract-proven in-memory bank and credit log: once per key."""

from __future__ import annotations

import pytest

from services.gateway.usecases.credit import credit
from shared.accounting.credits import fingerprint
from shared.contract import MAX_BALANCE
from shared.errors import ApiError
from tests.fakes.bank import InMemoryBank, InMemoryCreditLog
from tests.metrics import sample


async def shipped_credit(
    bank: InMemoryBank, log: InMemoryCreditLog, key: str, amount: int = 5
) -> tuple[str, int]:
    """A credit whose event the relay ships before the gateway looks."""
    with pytest.raises(ApiError) as unshipped:
        await credit(bank, log, "acme", key, amount, "purchase")
    assert unshipped.value.code == "upstream_unavailable"  # not durable yet: 503, retry
    bank.ship()
    return await credit(bank, log, "acme", key, amount, "purchase")


async def funded(balance: int = 10) -> tuple[InMemoryBank, InMemoryCreditLog]:
    bank = InMemoryBank()
    await bank.open("acme", balance)
    return bank, InMemoryCreditLog()


async def test_a_credit_is_answered_once_durable_and_its_retries_get_the_first_answer() -> None:
    bank, log = await funded(10)
    credited = sample("maas_tokens_credited_total")
    event_id, tokens = await shipped_credit(bank, log, "order-1")
    assert tokens == 15
    assert await credit(bank, log, "acme", "order-1", 5, "purchase") == (event_id, 15)
    assert (await bank.live("acme")).balance == 15
    assert sample("maas_tokens_credited_total") == credited + 5, "counted once"
    answer = await log.first_answer("acme", "order-1")
    assert answer == {
        "fingerprint": fingerprint(5, "purchase"),
        "event_id": event_id,
        "tokens": 15,
        "epoch": 1,
        "seq": 1,
    }


async def test_a_retry_after_redis_lost_the_record_gets_the_first_answer_not_a_second_credit() -> (
    None
):
    bank, log = await funded(10)
    event_id, _ = await shipped_credit(bank, log, "order-2")
    bank.forget_credit("acme", "order-2")
    assert await credit(bank, log, "acme", "order-2", 5, "purchase") == (event_id, 15)
    assert (await bank.live("acme")).balance == 15


async def test_a_retry_after_redis_rolled_back_past_the_credit_issues_it_there_again() -> None:
    """A failover to a replica behind lost the credit and its record: the retry gets the
    first answer, and Redis gets the tokens back (the ledger counts the two once)."""
    bank, log = await funded(10)
    event_id, _ = await shipped_credit(bank, log, "order-9")
    bank.roll_back("acme", to_seq=0, balance=10)
    with pytest.raises(ApiError) as unshipped:
        await credit(bank, log, "acme", "order-9", 5, "purchase")
    assert unshipped.value.code == "upstream_unavailable"  # durable first, as every credit
    bank.ship()
    assert await credit(bank, log, "acme", "order-9", 5, "purchase") == (event_id, 15)
    assert (await bank.live("acme")).balance == 15
    assert await credit(bank, log, "acme", "order-9", 5, "purchase") == (event_id, 15)
    assert (await bank.live("acme")).balance == 15, "held again: no third credit"


async def test_the_same_key_with_another_body_is_a_conflict_that_changes_nothing() -> None:
    bank, log = await funded(10)
    await shipped_credit(bank, log, "order-3")
    for amount, reason in ((6, "purchase"), (5, "gift")):
        with pytest.raises(ApiError) as raised:
            await credit(bank, log, "acme", "order-3", amount, reason)
        assert (raised.value.status, raised.value.code) == (409, "idempotency_conflict")
    bank.forget_credit("acme", "order-3")  # the record in MongoDB answers the same
    with pytest.raises(ApiError) as raised:
        await credit(bank, log, "acme", "order-3", 6, "purchase")
    assert raised.value.code == "idempotency_conflict"
    assert (await bank.live("acme")).balance == 15


async def test_a_credit_the_ledger_claimed_whose_answer_was_lost_answers_todays_balance() -> None:
    bank, log = await funded(10)
    log.claimed("acme", "order-4", fingerprint(5, "purchase"), "event-from-the-queue")
    assert await credit(bank, log, "acme", "order-4", 5, "purchase") == (
        "event-from-the-queue",
        10,
    )
    assert (await bank.live("acme")).balance == 10, "not credited a second time"


async def test_a_credit_over_the_balance_limit_is_refused_with_the_limit() -> None:
    bank, log = await funded(MAX_BALANCE - 1)
    with pytest.raises(ApiError) as raised:
        await credit(bank, log, "acme", "order-5", 5, "purchase")
    assert (raised.value.code, raised.value.details["limit"]) == ("balance_limit", MAX_BALANCE)
    assert await log.first_answer("acme", "order-5") is None


async def test_an_unknown_account_is_404() -> None:
    with pytest.raises(ApiError) as raised:
        await credit(InMemoryBank(), InMemoryCreditLog(), "ghost", "order-6", 5, "purchase")
    assert (raised.value.status, raised.value.code) == (404, "not_found")
