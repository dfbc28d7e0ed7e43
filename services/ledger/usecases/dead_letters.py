"""What operators do with dead letters, shared by `maas dlq` and the console.

Both read the ledger's index of dead letters, where dead letters live (see
adapters/dlq.py), decode a message's events the same way, and redrive or purge through
the same walk. One ledger replica at a time collects what reached the DLQ into it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.ledger.adapters.dlq import DeadLetters
from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.messages import Received
from services.ledger.usecases.apply_messages import CreditRevoker, MessageHandler
from shared.accounting.events import Event, MalformedMessage, decode_batch
from shared.keys import Keys
from shared.sqs import SQSClient
from shared.stores import MongoDoc, Redis, while_leased

COLLECT_EVERY_S = 5.0
log = logging.getLogger(__name__)


def decoded_events(letter: MongoDoc) -> list[Event] | None:
    """The message's events, or None when its body is not a batch (a poison message)."""
    try:
        return decode_batch(letter["body"]).events
    except MalformedMessage:
        return None


def letter_document(letter: MongoDoc) -> dict[str, Any]:
    """One dead letter as `maas dlq show` prints it: its index entry and its events."""
    events = decoded_events(letter)
    return {
        "message_id": letter["_id"],
        "group_id": letter["group_id"],
        "shard": letter.get("shard"),
        "accounts": letter.get("accounts", []),
        "seq_range": letter.get("seq_range"),
        "reason": letter.get("first_reason"),
        "last_reason": letter.get("last_reason"),
        "receive_count": letter.get("receive_count"),
        "dead_since": letter["dead_since"],
        "events": letter["body"] if events is None else [e.to_dict() for e in events],
    }


def operator_walk(
    sqs: SQSClient, dlq_url: str, db: AsyncDatabase[MongoDoc], bank: CreditRevoker
) -> DeadLetters:
    """Redrive and purge with the ledger's own handler.

    Every failure here leaves the message in the DLQ, so it is indexed as one at once
    (a receive count of one is already the last).
    """
    store = LedgerStore(db)
    handler = MessageHandler(store, max_receive_count=1, bank=bank)

    async def apply(messages: list[Received]) -> dict[str, str]:
        handled = await handler.handle(messages)
        return {mid: h.reason for mid, h in handled.items() if not h.done}

    return DeadLetters(sqs, dlq_url, store, apply)


async def collect_periodically(letters: DeadLetters, redis: Redis, stop: asyncio.Event) -> None:
    """Every few seconds, the one replica holding the lease moves what reached the DLQ
    into the index, so operators see every dead letter within that period."""

    async def collect() -> None:
        if moved := await letters.collect():
            log.info("dead letters indexed", extra={"messages": moved})

    await while_leased(
        redis,
        Keys.dead_letter_collector_lease(),
        COLLECT_EVERY_S,
        collect,
        stop,
        "collecting dead letters failed; retrying",
    )
