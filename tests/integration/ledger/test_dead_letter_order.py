"""A redrive applies every dead letter whatever order the index holds them in.

The DLQ numbers the messages it receives anew, so a message no ledger indexed on its
last receive (collected from the DLQ instead) carries a sequence number of another
queue. The failures the ledger recorded keep the main queue's; the index places a
collected message by it, and a redrive that finds an account's events out of order
still applies each message once the events before it have.
"""

from __future__ import annotations

import uuid

from services.ledger.adapters.dlq import DeadLetters
from services.ledger.domain.messages import Received, about
from services.ledger.usecases.apply_messages import MessageHandler
from shared.settings import Settings
from shared.sqs import provision_queues, sqs_client
from tests.ledger_harness import Ledger, message
from tests.stack import debit_event


async def test_letters_indexed_out_of_queue_order_are_all_redriven(
    ledger: Ledger, sqs_endpoint: str
) -> None:
    account = f"order-{uuid.uuid4().hex[:8]}"
    await ledger.accounts.create(account, 100)
    first, second, third = (
        message([debit_event(account, seq), debit_event(account, seq + 1)]) for seq in (1, 3, 5)
    )
    # The second and third were received and held (their events gap); the first reached
    # the DLQ without a receive the ledger finished, so only the DLQ's numbering places it.
    handler = MessageHandler(ledger.store, max_receive_count=5, bank=ledger.bank)
    for held, sequence in ((second, "20"), (third, "30")):
        received = Received(held.message_id, held.body, 1, held.group_id, sequence)
        assert not (await handler.handle([received]))[held.message_id].done
    for letter, dlq_sequence in ((second, "900"), (third, "901"), (first, "950")):
        await ledger.store.index_dead_letter(
            letter.message_id, letter.body, "s0", dlq_sequence, about(letter.body), 5,
            collected=True,
        )  # fmt: skip

    index = await ledger.store.dead_letter_index()
    assert [d["_id"] for d in index] == [second.message_id, third.message_id, first.message_id]
    assert [d["sequence"] for d in index] == ["20", "30", "950"]

    run = uuid.uuid4().hex[:8]
    settings = Settings(
        sqs_endpoint_url=sqs_endpoint,
        queue_name=f"order-{run}.fifo",
        dlq_name=f"order-{run}-dlq.fifo",
    )
    async with sqs_client(settings) as sqs:
        _, dlq = await provision_queues(sqs, settings)

        async def apply(messages: list[Received]) -> dict[str, str]:
            handled = await MessageHandler(ledger.store, 1, ledger.bank).handle(messages)
            return {mid: h.reason for mid, h in handled.items() if not h.done}

        walk = await DeadLetters(sqs, dlq, ledger.store, apply).redrive(None)

    assert walk.left == {}
    assert sorted(walk.done) == sorted(m.message_id for m in (first, second, third))
    stored = await ledger.accounts.get(account)
    assert stored is not None
    assert (stored["balance"], stored["seq"]) == (94, 6)
    assert await ledger.store.dead_letter_index() == []
