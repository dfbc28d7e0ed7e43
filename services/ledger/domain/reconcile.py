"""Compare an account's live balance (Redis) with the source of truth (MongoDB). Pure.

An account is settled when MongoDB has applied every event Redis assigned: the same
(epoch, seq), or Redis starting a new epoch with nothing assigned yet while nothing of
the account is on its way. A settled account whose balances differ drifts. One not
settled is pending while its events may still be on their way; once nothing more can
come (none of its events in the outbox, and the queue empty, or its events stuck behind
one of its dead letters, which nothing passes) MongoDB left behind is drift too:
`behind`. So a dead letter shows under load, not only once the whole pipeline is idle.
After Redis lost data, old-epoch events still in flight apply after the re-hydration
read MongoDB, so the drift of a settled account is bounded by
what was in flight: that is the overdraft the design accepts and reports here.
An account with reused positions not yet settled is `reused` whatever its balances:
its books are only exact again once `maas ledger settle` adopts those events. One with
stranded events (of an epoch it left before they were counted) is `stranded`, with
their amount, for the same reason. Every verdict names its procedure, the runbook entry
in docs/slos.md of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    DRIFT = "drift"
    PENDING = "pending"
    NOT_HYDRATED = "not_hydrated"
    BEHIND = "behind"
    REUSED = "reused"
    STRANDED = "stranded"

    @property
    def drifts(self) -> bool:
        return self in (Status.DRIFT, Status.BEHIND, Status.REUSED, Status.STRANDED)

    @property
    def procedure(self) -> str:
        return PROCEDURES[self]


PROCEDURES = {
    Status.OK: "none",
    Status.PENDING: "none: its events are on their way; ask again later",
    Status.NOT_HYDRATED: "none: Redis loads it from MongoDB on its next request",
    Status.DRIFT: "settle once idle (runbook: Reconciliation drift)",
    Status.BEHIND: "redrive its dead letters, or purge them and settle (runbook: Behind)",
    Status.REUSED: "settle once idle; it adopts the held events (runbook: Reused positions)",
    Status.STRANDED: "settle once idle; it adopts the stranded events (runbook: Stranded events)",
}


@dataclass(frozen=True, slots=True)
class BalanceAt:
    """An account's balance in one store, and the position it was taken at."""

    balance: int
    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class Row:
    account: str
    redis: BalanceAt | None
    mongo: BalanceAt
    outbox: int
    status: Status
    drift: int
    dead_letters: tuple[str, ...] = ()  # DLQ messages carrying this account's events
    reused: tuple[str, ...] = ()  # events held at a position another event holds
    stranded: tuple[str, ...] = ()  # events of an epoch left before they were counted
    stranded_tokens: int = 0  # what they would change in the balance

    def as_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "redis_balance": self.redis.balance if self.redis else None,
            "mongo_balance": self.mongo.balance,
            "outbox_tokens": self.outbox,
            "status": str(self.status),
            "drift": self.drift,
            "redis_position": [self.redis.epoch, self.redis.seq] if self.redis else None,
            "mongo_position": [self.mongo.epoch, self.mongo.seq],
            "dead_letters": list(self.dead_letters),
            "reused_events": list(self.reused),
            "stranded_events": list(self.stranded),
            "stranded_tokens": self.stranded_tokens,
            "procedure": self.status.procedure,
        }


def compare(
    account: str,
    redis: BalanceAt | None,
    mongo: BalanceAt,
    outbox: int,
    nothing_coming: bool,
    reused: tuple[str, ...] = (),
    stranded: tuple[str, ...] = (),
    stranded_tokens: int = 0,
) -> Row:
    """`outbox` is the signed sum of the account's events not yet sent to SQS."""
    if reused or stranded:
        drift = redis.balance - mongo.balance if redis else 0
        status = Status.REUSED if reused else Status.STRANDED
        return Row(
            account, redis, mongo, outbox, status, drift, (), reused, stranded, stranded_tokens
        )
    if redis is None:
        return Row(account, None, mongo, outbox, Status.NOT_HYDRATED, 0)
    settled = (redis.epoch, redis.seq) == (mongo.epoch, mongo.seq) or (
        redis.seq == 0 and nothing_coming
    )
    drift = redis.balance - mongo.balance
    if not settled:
        if nothing_coming:
            return Row(account, redis, mongo, outbox, Status.BEHIND, drift)
        return Row(account, redis, mongo, outbox, Status.PENDING, 0)
    return Row(account, redis, mongo, outbox, Status.DRIFT if drift else Status.OK, drift)
