"""A message as the ledger receives it from SQS, whichever queue it came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Received:
    message_id: str
    body: str
    receive_count: int
    group_id: str = ""
    sequence: str = ""
