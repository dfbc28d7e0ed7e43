"""Two failures at once: a Redis rollback (a failover to a replica behind) and a repeat.

Each test takes one account's Redis state back to a snapshot, as the failover would,
hands the events the gateway issued to a ledger worker in the order SQS would deliver
them, and checks both stores and reconcile's verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.ledger.domain.reconcile import Status as Verdict
from services.ledger.usecases.settle import settle
from shared.accounting.bank import Charge, Status, TokenBank
from shared.accounting.events import Event, event_from_stream_entry
from tests.ledger_harness import Ledger, message


@dataclass
class Snapshot:
    """One account's part of Redis: its hash, and its charges' pending records."""

    bank: TokenBank
    account: str

    async def take(self, charges: Sequence[Charge] = ()) -> None:
        keys, redis = self.bank.keys, self.bank.redis
        shard = keys.shard_of(self.account)
        dumped = await redis.dump(keys.account(self.account))
        assert dumped is not None
        self.hash: bytes = dumped
        self.pending = {c.id: await redis.hget(keys.pending(shard), c.id) for c in charges}

    async def restore(
        self, lost: Sequence[Charge] = (), idempotency_keys: tuple[str, ...] = ()
    ) -> None:
        """Back to the snapshot: charges made since (`lost`), refund marks and idempotency
        records written since are gone, pending records come back as they were."""
        keys, redis = self.bank.keys, self.bank.redis
        shard = keys.shard_of(self.account)
        await redis.restore(keys.account(self.account), 0, self.hash, replace=True)
        for charge in lost:
            await redis.hdel(keys.pending(shard), charge.id)
        for charge_id, record in self.pending.items():
            await redis.delete(keys.refund_decided(self.account, charge_id))
            if record is not None:
                await redis.hset(keys.pending(shard), charge_id, record)
        for key in idempotency_keys:
            await redis.delete(keys.idempotency(self.account, key))


async def issued(bank: TokenBank, account: str, after: Sequence[Event] = ()) -> list[Event]:
    """The account's events in its outbox (no relay runs here), less those seen before."""
    entries: list[tuple[str, dict[str, str]]] = await bank.redis.xrange(  # type: ignore[assignment]
        bank.keys.outbox_of(account)
    )
    seen = {e.id for e in after}
    events = [event_from_stream_entry(entry_id, fields) for entry_id, fields in entries]
    return [e for e in events if e.account == account and e.id not in seen]


async def loaded(ledger: Ledger, account: str, balance: int) -> Snapshot:
    """A new account loaded into Redis, and a snapshot of it taken there and then."""
    await ledger.accounts.create(account, balance)
    await ledger.bank.hydrate(account)
    snapshot = Snapshot(ledger.bank, account)
    await snapshot.take()
    return snapshot


async def charged(bank: TokenBank, account: str, price: int) -> Charge:
    _, charge = await bank.charge(account, price, None, "meme:text", "r", 60)
    assert charge is not None
    return charge


async def deliver(ledger: Ledger, events: list[Event]) -> bool:
    delivered = message(events)
    return (await ledger.worker().handle([delivered]))[delivered.message_id].done


async def test_a_refund_issued_again_after_a_failover_counts_once(ledger: Ledger) -> None:
    """1(a): a charge refunded; Redis fails over to a replica with the charge still
    pending; the sweeper refunds it again, under the same number."""
    await ledger.accounts.create("refunded-twice", 10)
    bank = ledger.bank
    charge = await charged(bank, "refunded-twice", 2)
    snapshot = Snapshot(bank, "refunded-twice")
    await snapshot.take([charge])
    assert (await bank.refund(charge)).status == Status.APPLIED
    shipped = await issued(bank, "refunded-twice")
    assert await deliver(ledger, shipped)
    await snapshot.restore()

    again = await bank.refund(charge)  # the sweeper finds it pending again
    assert (again.status, again.balance) == (Status.APPLIED, 10)
    (repeat,) = await issued(bank, "refunded-twice", shipped)
    assert repeat.charge == shipped[1].charge != ""

    assert await deliver(ledger, [repeat])
    assert await ledger.books("refunded-twice") == (10, 10, Verdict.OK)
    history = await ledger.store.history("refunded-twice", 10)
    assert [e["voided_for"] for e in history if e.get("voided_for")] == [shipped[1].id]


async def test_a_refund_issued_again_at_a_new_position_is_voided_by_its_charge(
    ledger: Ledger,
) -> None:
    """1(a), with a charge in between: the repeat follows in the sequence, so only the
    refund's charge tells it apart; settle adopts the reused debit."""
    await ledger.accounts.create("refunded-later", 10)
    bank = ledger.bank
    charge = await charged(bank, "refunded-later", 2)
    snapshot = Snapshot(bank, "refunded-later")
    await snapshot.take([charge])
    await bank.refund(charge)
    shipped = await issued(bank, "refunded-later")
    assert await deliver(ledger, shipped)
    await snapshot.restore()
    await charged(bank, "refunded-later", 1)  # takes the refund's number
    await bank.refund(charge)
    renumbered = await issued(bank, "refunded-later", shipped)

    assert not await deliver(ledger, renumbered)  # the debit at a reused position waits
    assert await ledger.books("refunded-later") == (9, 10, Verdict.REUSED)
    await settle(bank, ledger.store, "refunded-later", "failover", "test")
    assert await ledger.books("refunded-later") == (9, 9, Verdict.OK)


async def test_a_credit_retried_after_a_rollback_ends_equal_in_both_stores(
    ledger: Ledger,
) -> None:
    """1(b): billing retries a key whose credit and record the rollback lost; the retry
    takes the first credit's own number."""
    snapshot = await loaded(ledger, "retried", 10)
    bank = ledger.bank
    first = await bank.credit("retried", 5, "purchase", "K", "body")
    await snapshot.restore(idempotency_keys=("K",))
    retry = await bank.credit("retried", 5, "purchase", "K", "body")
    assert (retry.status, retry.balance, retry.seq) == (Status.APPLIED, 15, first.seq)
    events = await issued(bank, "retried")

    assert await deliver(ledger, events[:1])
    assert await deliver(ledger, events[1:])
    assert await ledger.books("retried") == (15, 15, Verdict.OK)


async def test_a_credit_and_its_retry_in_one_receive_count_once(ledger: Ledger) -> None:
    snapshot = await loaded(ledger, "retried-together", 10)
    bank = ledger.bank
    await bank.credit("retried-together", 5, "purchase", "K", "body")
    await snapshot.restore(idempotency_keys=("K",))
    await bank.credit("retried-together", 5, "purchase", "K", "body")

    assert await deliver(ledger, await issued(bank, "retried-together"))
    assert await ledger.books("retried-together") == (15, 15, Verdict.OK)


async def test_a_retry_after_redis_reloaded_the_account_is_not_taken_back_from_redis(
    ledger: Ledger,
) -> None:
    """1(b), through a re-hydration: Redis loaded the account before MongoDB counted the
    first credit, so Redis holds the retry alone."""
    await ledger.accounts.create("reloaded-retry", 10)
    bank = ledger.bank
    await bank.credit("reloaded-retry", 5, "purchase", "K", "body")
    first = await issued(bank, "reloaded-retry")
    await bank.redis.delete(
        bank.keys.account("reloaded-retry"), bank.keys.idempotency("reloaded-retry", "K")
    )
    retry = await bank.credit("reloaded-retry", 5, "purchase", "K", "body")  # hydrates at 10
    assert retry.balance == 15

    assert await deliver(ledger, first)
    assert await deliver(ledger, await issued(bank, "reloaded-retry", first))
    assert await ledger.books("reloaded-retry") == (15, 15, Verdict.OK)


async def test_settle_voids_a_retried_credit_it_finds_at_a_reused_position(
    ledger: Ledger,
) -> None:
    """1(b) near by: the retry lands on a reused position, and settle adopts by claim."""
    snapshot = await loaded(ledger, "adopted-retry", 10)
    bank = ledger.bank
    await bank.credit("adopted-retry", 5, "purchase", "K", "body")
    await charged(bank, "adopted-retry", 1)
    shipped = await issued(bank, "adopted-retry")
    assert await deliver(ledger, shipped)
    await snapshot.restore(idempotency_keys=("K",))
    await charged(bank, "adopted-retry", 1)  # takes the credit's number
    await bank.credit("adopted-retry", 5, "purchase", "K", "body")  # takes the debit's

    assert not await deliver(ledger, await issued(bank, "adopted-retry", shipped))
    assert await ledger.books("adopted-retry") == (14, 14, Verdict.REUSED)
    settled = await settle(bank, ledger.store, "adopted-retry", "failover", "test")
    assert [(e.type, bool(voided)) for e, voided in settled.adopted] == [
        ("debit", False),
        ("credit", True),
    ]
    assert await ledger.books("adopted-retry") == (13, 13, Verdict.OK)


async def test_a_failed_meme_whose_charge_the_rollback_lost_is_refunded_by_the_ledger(
    ledger: Ledger,
) -> None:
    """1(c): MongoDB counted the charge, Redis lost it, then the meme failed."""
    snapshot = await loaded(ledger, "lost-charge", 10)
    bank = ledger.bank
    charge = await charged(bank, "lost-charge", 2)
    shipped = await issued(bank, "lost-charge")
    assert await deliver(ledger, shipped)
    await snapshot.restore(lost=[charge])

    refunded = await bank.refund(charge, undelivered=True)  # the handler's own refund
    assert (refunded.status, refunded.balance) == (Status.LEFT_TO_LEDGER, 10)
    assert not await deliver(ledger, await issued(bank, "lost-charge", shipped))
    assert await ledger.books("lost-charge") == (10, 8, Verdict.REUSED)
    await settle(bank, ledger.store, "lost-charge", "failover", "test")
    assert await ledger.books("lost-charge") == (10, 10, Verdict.OK)


async def test_a_refund_of_a_charge_that_never_reached_mongodb_counts_nothing(
    ledger: Ledger,
) -> None:
    """1(c), the other way: the rollback lost the charge before it was shipped."""
    snapshot = await loaded(ledger, "never-shipped", 10)
    bank = ledger.bank
    charge = await charged(bank, "never-shipped", 2)
    lost = await issued(bank, "never-shipped")
    await snapshot.restore(lost=[charge])

    assert (await bank.refund(charge, undelivered=True)).status == Status.LEFT_TO_LEDGER
    assert await deliver(ledger, await issued(bank, "never-shipped", lost))
    assert await ledger.books("never-shipped") == (10, 10, Verdict.OK)
    (entry,) = await ledger.store.history("never-shipped", 5)
    assert entry["void_reason"].startswith(f"its charge {charge.id} never reached MongoDB")


async def test_an_old_epochs_credit_arriving_after_the_next_epoch_began_is_stranded_not_lost(
    ledger: Ledger,
) -> None:
    """3: a credit's message sat in the DLQ while Redis lost the account and loaded it
    again; the new epoch's first charge applied; then the credit was redriven."""
    await ledger.accounts.create("stranded", 10)
    bank = ledger.bank
    accepted = await bank.credit("stranded", 5, "purchase", "K", "body")  # answered 202
    held = await issued(bank, "stranded")
    await bank.redis.delete(bank.keys.account("stranded"))
    await charged(bank, "stranded", 1)  # a new epoch, loaded from MongoDB's 10
    assert await deliver(ledger, await issued(bank, "stranded", held))

    redriven = message(held, receive_count=1)
    handled = (await ledger.worker().handle([redriven]))[redriven.message_id]
    assert not handled.done
    assert f"stranded event for 'stranded': epoch {accepted.epoch} seq 1" in handled.reason
    redis, mongo, verdict = await ledger.books("stranded")
    assert (redis, mongo, verdict) == (9, 9, Verdict.STRANDED)
    assert "settle" in verdict.procedure

    await settle(bank, ledger.store, "stranded", "redriven after the next epoch", "test")
    assert await ledger.books("stranded") == (14, 14, Verdict.OK)
    again = message(held, receive_count=2)
    assert (await ledger.worker().handle([again]))[again.message_id].done
    assert await ledger.books("stranded") == (14, 14, Verdict.OK)
