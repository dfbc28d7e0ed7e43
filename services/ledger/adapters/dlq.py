"""The dead-letter queue as operators act on it: redrive and purge, batch by batch.

Listing and showing read the index of dead letters in MongoDB (see `LedgerStore`),
never the queue: reading an SQS queue means receiving from it, which hides messages
from everyone else. Redrive and purge have to receive, and FIFO returns no more
messages of a group while some of its messages are in flight, so they settle each
batch (delete what is done) before receiving the next: that way every message of a
group is reached, and no receipt handle is kept long enough to go stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.messages import Received
from shared.sqs import SQSClient

HOLD_S = 60  # a batch is settled well within this; then the handle is not used again


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    receipt: str
    body: str
    group_id: str
    sequence: str
    receive_count: int

    def received(self) -> Received:
        return Received(
            self.message_id, self.body, self.receive_count, self.group_id, self.sequence
        )


@dataclass(slots=True)
class Walk:
    """What a redrive or purge did: messages done, and the ones left with why."""

    done: list[str]
    left: dict[str, str]


Settle = Callable[[list[DeadLetter]], Awaitable[dict[str, str]]]
# Apply messages as the ledger would; the ones that stay in the queue, with why.
Apply = Callable[[list[Received]], Awaitable[dict[str, str]]]
Progress = Callable[[int], object] | None


class DeadLetters:
    def __init__(self, sqs: SQSClient, dlq_url: str, store: LedgerStore, apply: Apply) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.store = store
        self.apply = apply

    async def redrive(self, chosen: set[str] | None, progress: Progress = None) -> Walk:
        """Apply the chosen messages (None: all) in queue order, as the ledger would.

        Applying them here, with the ledger's own conditional updates, rather than sending
        them back to the main queue: FIFO would put them behind the later messages of
        their group that are still retrying there, which then gap until they, too, are
        dead letters. Applied here, those later messages apply on their next receive.
        """

        async def apply(letters: list[DeadLetter]) -> dict[str, str]:
            return await self.apply([letter.received() for letter in letters])

        return await self._walk(chosen, apply, progress)

    async def purge(self, chosen: set[str] | None, progress: Progress = None) -> Walk:
        """Delete the chosen messages (None: all) for good."""

        async def drop(_: list[DeadLetter]) -> dict[str, str]:
            return {}

        return await self._walk(chosen, drop, progress)

    async def _walk(self, chosen: set[str] | None, settle: Settle, progress: Progress) -> Walk:
        """Settle batch after batch; `progress` hears how many messages each one took."""
        walk = Walk([], {})
        kept: list[str] = []  # receipts of messages left in the queue, released at the end
        try:
            async for batch in self._batches():
                picked = [m for m in batch if chosen is None or m.message_id in chosen]
                left = await settle(picked)
                done = [m for m in picked if m.message_id not in left]
                await self._delete(done)
                await self.store.forget_dead_letters([m.message_id for m in done])
                walk.done += [m.message_id for m in done]
                if progress is not None:
                    progress(len(picked))
                walk.left.update(left)
                kept += [m.receipt for m in batch if m not in done]
                if chosen is not None and chosen <= {*walk.done, *walk.left}:
                    break
        finally:
            await self._release(kept)
        return walk

    async def _batches(self) -> AsyncIterator[list[DeadLetter]]:
        """Receive until the queue has nothing new to give.

        Messages not deleted stay invisible until the walk ends, so FIFO moves on to the
        rest of their group or to other groups; one seen again (the walk outlasted
        HOLD_S) is let go at once and not walked twice.
        """
        seen: set[str] = set()
        while True:
            answer = await self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=HOLD_S,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["All"],
            )
            batch = [_letter(m) for m in answer.get("Messages", [])]
            fresh = [m for m in batch if m.message_id not in seen]
            await self._release([m.receipt for m in batch if m not in fresh])
            if not fresh:
                return
            seen.update(m.message_id for m in fresh)
            yield fresh

    async def _delete(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        answer = await self.sqs.delete_message_batch(
            QueueUrl=self.dlq_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m.receipt} for n, m in enumerate(letters)],
        )
        if answer.get("Failed"):
            raise RuntimeError(f"the DLQ refused to delete: {answer['Failed']}")

    async def _release(self, receipts: list[str]) -> None:
        """Make messages visible again at once, for the ledger's other readers."""
        for first in range(0, len(receipts), 10):
            await self.sqs.change_message_visibility_batch(
                QueueUrl=self.dlq_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": receipt, "VisibilityTimeout": 0}
                    for n, receipt in enumerate(receipts[first : first + 10])
                ],
            )


def _letter(message: dict[str, Any]) -> DeadLetter:
    attributes = message.get("Attributes", {})
    return DeadLetter(
        message_id=message["MessageId"],
        receipt=message["ReceiptHandle"],
        body=message["Body"],
        group_id=attributes.get("MessageGroupId", ""),
        sequence=attributes.get("SequenceNumber", ""),
        receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
    )
