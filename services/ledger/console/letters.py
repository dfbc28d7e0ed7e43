"""Where a dead letter's accounts stand: MongoDB's applied position and what is missing.

Pure: given the message's events and each account's applied position, say per account
whether its events are already applied, would apply next on a redrive, or wait behind
events that never arrived (and which ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.ledger.domain.apply import Position
from shared.accounting.events import Event


@dataclass(frozen=True, slots=True)
class Missing:
    epoch: int
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class AccountStanding:
    account: str
    position: Position | None
    events: list[Event]
    state: str
    missing: Missing | None = None


def standing(account: str, events: list[Event], position: Position | None) -> AccountStanding:
    ordered = sorted(events, key=lambda e: (e.epoch, e.seq))
    if position is None:
        return AccountStanding(account, None, ordered, "no such account in MongoDB")
    waiting = [e for e in ordered if not position.is_duplicate(e)]
    if not waiting:
        return AccountStanding(account, position, ordered, "already applied")
    first = waiting[0]
    if position.is_followed_by(first):
        return AccountStanding(account, position, ordered, "applies next")
    start = position.seq + 1 if first.epoch == position.epoch else 1
    missing = Missing(first.epoch, start, first.seq - 1)
    return AccountStanding(account, position, ordered, "waits for missing events", missing)


def standings(events: list[Event], positions: dict[str, Position]) -> list[AccountStanding]:
    by_account: dict[str, list[Event]] = {}
    for event in events:
        by_account.setdefault(event.account, []).append(event)
    return [standing(a, evs, positions.get(a)) for a, evs in sorted(by_account.items())]
