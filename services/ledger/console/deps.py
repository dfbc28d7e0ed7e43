"""What the console's handlers need, built by the ledger's bootstrap and handed in."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.console.gate import Gate, Session
from services.ledger.console.journal import OperatorJournal
from services.ledger.pipeline import Samples
from services.ledger.usecases.reconcile import Reconciler
from shared.accounting.bank import TokenBank
from shared.auth import Principal
from shared.settings import Settings
from shared.sqs import SQSClient
from shared.stores import MongoDoc, Redis


@dataclass(frozen=True, slots=True)
class Console:
    settings: Settings
    gate: Gate
    redis: Redis
    db: AsyncDatabase[MongoDoc]
    sqs: SQSClient
    dlq_url: str
    store: LedgerStore
    journal: OperatorJournal
    reconciler: Reconciler
    bank: TokenBank
    samples: Samples


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("console_session", Session)


def console(request: web.Request) -> Console:
    return request.config_dict[CONSOLE]


def operator(request: web.Request) -> Principal:
    """The signed-in admin (the middleware lets no other request through)."""
    return request[SESSION].principal
