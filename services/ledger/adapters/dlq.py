"""The dead-letter queue as operators see it: list, show, redrive, purge.

Reading an SQS queue means receiving from it, so a listing holds every message
invisible while it walks the queue (FIFO hides a group's later messages behind an
earlier one in flight) and makes them all visible again when done.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from shared.events import Batch, MalformedMessage, decode_batch
from shared.sqs import SQSClient

HOLD_S = 60


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    receipt: str
    body: str
    group_id: str
    sequence: int
    sent_at: float

    @property
    def batch(self) -> Batch | None:
        try:
            return decode_batch(self.body)
        except MalformedMessage:
            return None

    @property
    def age_s(self) -> float:
        return max(0.0, time.time() - self.sent_at)


class DeadLetters:
    def __init__(self, sqs: SQSClient, dlq_url: str, queue_url: str) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.queue_url = queue_url
        self._removed: set[str] = set()

    @asynccontextmanager
    async def held(self, limit: int = 10_000) -> AsyncIterator[list[DeadLetter]]:
        """Every dead letter (up to `limit`) in queue order, released again on exit."""
        letters: dict[str, DeadLetter] = {}
        try:
            while len(letters) < limit:
                answer = await self.sqs.receive_message(
                    QueueUrl=self.dlq_url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=HOLD_S,
                    WaitTimeSeconds=1,
                    MessageSystemAttributeNames=["All"],
                )
                fresh = [m for m in answer.get("Messages", []) if m["MessageId"] not in letters]
                if not fresh:
                    break
                for message in fresh:
                    letters[message["MessageId"]] = _letter(message)
            yield sorted(letters.values(), key=lambda m: (m.group_id, m.sequence))
        finally:
            for letter in letters.values():
                if letter.message_id not in self._removed:
                    await self.sqs.change_message_visibility(
                        QueueUrl=self.dlq_url, ReceiptHandle=letter.receipt, VisibilityTimeout=0
                    )

    async def redrive(self, letter: DeadLetter) -> None:
        """Send the message back to the main queue in its group, then drop it here."""
        await self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=letter.body,
            MessageGroupId=letter.group_id,
            # A new id: the original one may still be inside SQS's deduplication window.
            MessageDeduplicationId=hashlib.sha256(
                f"redrive:{letter.message_id}:{time.time_ns()}".encode()
            ).hexdigest(),
        )
        await self.purge(letter)

    async def purge(self, letter: DeadLetter) -> None:
        await self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=letter.receipt)
        self._removed.add(letter.message_id)


def _letter(message: dict[str, Any]) -> DeadLetter:
    attributes = message.get("Attributes", {})
    return DeadLetter(
        message_id=message["MessageId"],
        receipt=message["ReceiptHandle"],
        body=message["Body"],
        group_id=attributes.get("MessageGroupId", ""),
        sequence=int(attributes.get("SequenceNumber", "0")),
        sent_at=int(attributes.get("SentTimestamp", "0")) / 1000,
    )
