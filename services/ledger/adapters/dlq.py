"""Dead letters arrive in the SQS dead-letter queue and live in MongoDB's index.

A reader that does not delete sees at most the first ten messages of a FIFO group: SQS
returns no more of a group while some of its messages are in flight, and a released
message is the first it returns again. So no walk can show a whole DLQ and leave it as
it was. `collect` instead moves every message it receives from the DLQ into the index
(`dead_letters` in MongoDB, the body included) and only then deletes it from the queue:
a crash in between leaves the message to be collected again, and the index write is an
upsert. The index is therefore complete, whatever path brought a message to the DLQ (a
ledger that died during the last receive, a message moved by hand, another tool), and
`list`, `show`, `redrive` and `purge` act on it alone. One ledger replica collects
every few seconds under a lease; redrive and purge collect first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.messages import Received, about
from shared.sqs import SQSClient

HOLD_S = 60  # a collected batch is indexed and deleted well within this
RESOLVED_KEPT = timedelta(days=15)  # longer than SQS keeps any message
BATCH = 10  # messages redriven together, as one receive of the ledger would bring


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    receipt: str
    body: str
    group_id: str
    sequence: str
    receive_count: int


@dataclass(slots=True)
class Walk:
    """What a redrive or purge did: messages done, and the ones left with why."""

    done: list[str]
    left: dict[str, str]


# Apply messages as the ledger would; the ones that could not apply, with why.
Apply = Callable[[list[Received]], Awaitable[dict[str, str]]]
Progress = Callable[[int], object] | None


class DeadLetters:
    def __init__(self, sqs: SQSClient, dlq_url: str, store: LedgerStore, apply: Apply) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.store = store
        self.apply = apply

    async def collect(self) -> int:
        """Move every message the DLQ holds into the index; how many were moved."""
        moved = 0
        while True:
            answer = await self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=HOLD_S,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
            )
            letters = [_letter(m) for m in answer.get("Messages", [])]
            if not letters:
                await self.store.forget_resolved_dead_letters(datetime.now(UTC) - RESOLVED_KEPT)
                return moved
            for letter in letters:
                await self.store.index_dead_letter(
                    letter.message_id,
                    letter.body,
                    letter.group_id,
                    letter.sequence,
                    about(letter.body),
                    letter.receive_count,
                    collected=True,
                )
            await self._delete(letters)
            moved += len(letters)

    async def redrive(self, chosen: set[str] | None, progress: Progress = None) -> Walk:
        """Apply the chosen messages (None: all) in queue order, as the ledger would.

        Applying them here, with the ledger's own conditional updates, rather than sending
        them back to the main queue: FIFO would put them behind the later messages of
        their group that are still retrying there, which then gap until they, too, are
        dead letters. Applied here, those later messages apply on their next receive.
        """
        pending = await self._chosen(chosen)
        walk = Walk([], {})
        size = BATCH
        while pending:  # a message left waiting for another one may apply in the next pass
            walk.left = {}
            for first in range(0, len(pending), size):
                batch = pending[first : first + size]
                left = await self.apply(
                    [
                        Received(d["_id"], d["body"], d.get("receive_count") or 1,
                                 d["group_id"], d["sequence"])
                        for d in batch
                    ]
                )  # fmt: skip
                done = [d["_id"] for d in batch if d["_id"] not in left]
                await self.store.resolve_dead_letters(done, "redriven")
                walk.done += done
                walk.left |= left
                if progress is not None:
                    progress(len(done))
            if len(walk.left) < len(pending):
                size = BATCH
            elif size > 1:
                # Planned together, an account's events stop at its first gap. Out of
                # queue order (a message no ledger received is placed by the DLQ's
                # numbering), that gap hides the events that follow MongoDB's position:
                # alone, each message applies what it can.
                size = 1
            else:
                break
            pending = [d for d in pending if d["_id"] in walk.left]
        return walk

    async def purge(self, chosen: set[str] | None, progress: Progress = None) -> Walk:
        """Delete the chosen messages (None: all) for good."""
        done = [d["_id"] for d in await self._chosen(chosen)]
        await self.store.resolve_dead_letters(done, "purged")
        if progress is not None:
            progress(len(done))
        return Walk(done, {})

    async def _chosen(self, chosen: set[str] | None) -> list[dict[str, Any]]:
        """The chosen dead letters, bodies included, in queue order, after a collection."""
        await self.collect()
        letters = await self.store.dead_letter_index(bodies=True)
        return [d for d in letters if chosen is None or d["_id"] in chosen]

    async def _delete(self, letters: list[DeadLetter]) -> None:
        answer = await self.sqs.delete_message_batch(
            QueueUrl=self.dlq_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m.receipt} for n, m in enumerate(letters)],
        )
        if answer.get("Failed"):
            raise RuntimeError(f"the DLQ refused to delete: {answer['Failed']}")


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
