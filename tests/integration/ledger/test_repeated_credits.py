"""A credit repeating an (account, idempotency key) counts once, in MongoDB and in Redis."""

from __future__ import annotations

import pytest

from shared.accounting.bank import Status, TokenBank
from shared.accounting.credits import FirstCredit
from shared.accounting.events import Event, event_from_stream_entry
from tests.ledger_harness import Ledger, message


@pytest.mark.parametrize("died_after_revoking", [False, True])
async def test_a_repeated_credit_is_voided_and_its_tokens_taken_back_once(
    ledger: Ledger, died_after_revoking: bool
) -> None:
    account = f"billed-{died_after_revoking}".lower()
    await ledger.accounts.create(account, 10)
    bank = ledger.bank
    first = await bank.credit(account, 50, "purchase", "inv-1", "body")
    await bank.redis.delete(bank.keys.idempotency(account, "inv-1"))  # Redis forgot the key
    repeat = await bank.credit(account, 50, "purchase", "inv-1", "body")
    assert (repeat.status, repeat.balance) == (Status.APPLIED, 110)
    events = await outbox(bank, account)
    assert [e.request_id for e in events] == ["inv-1", "inv-1"]
    if died_after_revoking:  # before MongoDB moved: the next worker must not revoke again
        original = FirstCredit(events[0].id, events[0].epoch, events[0].seq)
        assert await bank.revoke_credits([(events[1], original)]) == 1

    worker = ledger.worker()
    for receive in (1, 2):  # and a redelivery changes nothing more
        delivered = message(events, receive_count=receive)
        assert (await worker.handle([delivered]))[delivered.message_id].done

    stored = await ledger.accounts.get(account)
    assert stored is not None
    assert (stored["balance"], stored["seq"]) == (60, 2)
    assert await bank.balance(account) == 60
    (voided,) = [e for e in await ledger.store.history(account, 5) if e.get("voided_for")]
    assert (voided["event_id"], voided["voided_for"]) == (repeat.event_id, first.event_id)
    assert voided["counted"] is False


async def test_a_repeat_from_before_a_rehydration_is_not_taken_back_from_redis(
    ledger: Ledger,
) -> None:
    """Redis re-loaded from MongoDB since, and MongoDB never counted the repeat."""
    await ledger.accounts.create("reloaded", 0)
    bank = ledger.bank
    await bank.credit("reloaded", 5, "purchase", "inv-2", "body")
    await bank.redis.delete(bank.keys.idempotency("reloaded", "inv-2"))
    await bank.credit("reloaded", 5, "purchase", "inv-2", "body")
    events = await outbox(bank, "reloaded")
    delivered = message(events[:1])
    await ledger.worker().handle([delivered])
    await bank.redis.delete(bank.keys.account("reloaded"))
    await bank.hydrate("reloaded")  # a new epoch, from MongoDB's 5

    repeat = message(events[1:])
    assert (await ledger.worker().handle([repeat]))[repeat.message_id].done

    assert await bank.balance("reloaded") == 5
    stored = await ledger.accounts.get("reloaded")
    assert stored is not None
    assert stored["balance"] == 5


async def outbox(bank: TokenBank, account: str) -> list[Event]:
    """The account's events not yet relayed (no relay runs here; shards are shared)."""
    entries: list[tuple[str, dict[str, str]]] = await bank.redis.xrange(  # type: ignore[assignment]
        bank.keys.outbox_of(account)
    )
    events = [event_from_stream_entry(entry_id, fields) for entry_id, fields in entries]
    return [e for e in events if e.account == account]
