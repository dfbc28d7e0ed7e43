"""A message as the ledger receives it from SQS, whichever queue it came from."""

from __future__ import annotations

from dataclasses import dataclass

from shared.accounting.events import Batch, MalformedMessage, decode_batch


@dataclass(frozen=True, slots=True)
class Received:
    message_id: str
    body: str
    receive_count: int
    group_id: str = ""
    sequence: str = ""


def summary(batch: Batch) -> dict[str, object]:
    """What an operator sees of a dead-lettered message without decoding it."""
    seqs = [e.seq for e in batch.events]
    return {
        "shard": batch.shard,
        "accounts": sorted({e.account for e in batch.events}),
        "seq_range": [min(seqs), max(seqs)],
        "events": len(batch.events),
    }


def about(body: str) -> dict[str, object]:
    """`summary` of a message body; nothing for a body that is not a batch."""
    try:
        return summary(decode_batch(body))
    except MalformedMessage:
        return {}
