"""Compare an account's live balance (Redis) with the source of truth (MongoDB). Pure.

An account is settled when MongoDB has applied every event Redis assigned: the same
(epoch, seq), or Redis starting a new epoch with nothing assigned yet while the
pipeline is idle. Only a settled account can be said to drift; one still catching
up is pending. After Redis lost data, old-epoch events still in flight apply after
the re-hydration read MongoDB, so the drift of a settled account is bounded by
what was in flight: that is the overdraft the design accepts and reports here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    DRIFT = "drift"
    PENDING = "pending"
    NOT_HYDRATED = "not_hydrated"


@dataclass(frozen=True, slots=True)
class Position:
    balance: int
    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class Row:
    account: str
    redis: Position | None
    mongo: Position
    outbox: int
    status: Status
    drift: int

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
        }


def compare(
    account: str, redis: Position | None, mongo: Position, outbox: int, pipeline_idle: bool
) -> Row:
    """`outbox` is the signed sum of the account's events not yet sent to SQS."""
    if redis is None:
        return Row(account, None, mongo, outbox, Status.NOT_HYDRATED, 0)
    settled = (redis.epoch, redis.seq) == (mongo.epoch, mongo.seq) or (
        redis.seq == 0 and pipeline_idle
    )
    if not settled:
        return Row(account, redis, mongo, outbox, Status.PENDING, 0)
    drift = redis.balance - mongo.balance
    return Row(account, redis, mongo, outbox, Status.DRIFT if drift else Status.OK, drift)
