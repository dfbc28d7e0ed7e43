"""A ledger worker's parts on the shared servers, for tests that drive it by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.messages import Received
from services.ledger.usecases.apply_messages import MessageHandler
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import TokenBank
from shared.accounting.events import Batch, Event


@dataclass(frozen=True, slots=True)
class Ledger:
    store: LedgerStore
    accounts: AccountStore
    bank: TokenBank

    def worker(self, max_receive_count: int = 3) -> MessageHandler:
        return MessageHandler(self.store, max_receive_count, self.bank)


def message(events: list[Event], receive_count: int = 1) -> Received:
    """The events packed as the relay packs them, as one received SQS message."""
    body = Batch(0, events).encode()
    return Received(uuid.uuid4().hex, body, receive_count, group_id="s0", sequence="1")
