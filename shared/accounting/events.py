"""Token events and the packed SQS message that carries them, versioned.

The relay packs up to N events of one shard, in order, into one message body; the
ledger unpacks it. Decoding is strict: anything off is `MalformedMessage`, which the
ledger leaves to SQS redelivery and, in the end, the dead-letter queue.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from shared.accounting.shapes import OUTBOX_ENTRY

EVENT_VERSION = 1
EVENT_TYPES = ("debit", "credit", "refund", "return", "close")
EventType = Literal["debit", "credit", "refund", "return", "close"]
# What each type does, in one place: to the balance (a debit takes, credits and refunds
# give, a return gives a region's unspent slice back to the account's pool, a close takes
# what a lost Redis's slice held as spent), and to the usage counters (a debit is a paid
# call, a refund takes one back).
BALANCE_SIGN: dict[str, int] = {
    "debit": -1, "credit": 1, "refund": 1, "return": -1, "close": -1,
}  # fmt: skip
USAGE_SIGN: dict[str, int] = {"debit": 1, "credit": 0, "refund": -1, "return": 0, "close": 0}
# A close is written before anyone knows its amount (0 on the wire): the ledger gives it
# the book's balance where it applies it (services/ledger/domain/apply.py).
CLOSE = "close"


def signed_amount(event_type: str, amount: int) -> int:
    """The change an event of `event_type` makes to the balance."""
    return BALANCE_SIGN[event_type] * amount


class MalformedMessage(ValueError):
    """A message body or event that does not follow the schema."""


@dataclass(frozen=True, slots=True)
class ChargeRef:
    """The charge a refund gives back: its position in the account's numbering, and id.

    A refund names it so the ledger counts at most one refund per charge, and only of a
    charge it counted, whatever position or epoch the refund itself got.
    """

    epoch: int
    seq: int
    id: str

    def __str__(self) -> str:
        return f"{self.epoch}:{self.seq}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> ChargeRef:
        epoch, seq, charge_id = text.split(":")
        if not (epoch.isdigit() and seq.isdigit() and charge_id):
            raise ValueError(text)
        return cls(int(epoch), int(seq), charge_id)


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: EventType
    account: str
    amount: int
    epoch: int
    seq: int
    reason: str
    request_id: str
    at: str
    v: int = EVENT_VERSION
    charge: str = ""  # a refund's `ChargeRef`; empty on other events (and older refunds)
    trace: str = ""  # the W3C traceparent of the request that made it (shared/tracing.py)

    @property
    def signed_amount(self) -> int:
        return signed_amount(self.type, self.amount)

    @property
    def usage_sign(self) -> int:
        return USAGE_SIGN[self.type]

    @property
    def kind(self) -> str | None:
        """The meme kind a debit or refund paid for (`meme:text` -> `text`)."""
        prefix, _, kind = self.reason.partition(":")
        return kind if prefix == "meme" and kind else None

    @property
    def charge_ref(self) -> ChargeRef | None:
        return ChargeRef.parse(self.charge) if self.charge else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rfc3339_from_ms(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def parse_rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _int(raw: dict[str, Any], name: str, minimum: int) -> int:
    value = raw.get(name)
    if type(value) is not int or value < minimum:
        raise MalformedMessage(f"event field {name!r} must be an integer >= {minimum}")
    return value


def _str(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"event field {name!r} must be a non-empty string")
    return value


def event_from_dict(raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise MalformedMessage("event is not an object")
    if raw.get("v") != EVENT_VERSION:
        raise MalformedMessage(f"unsupported event version {raw.get('v')!r}")
    kind = raw.get("type")
    if kind not in EVENT_TYPES:
        raise MalformedMessage(f"unknown event type {kind!r}")
    at = _str(raw, "at")
    try:
        parse_rfc3339(at)
    except ValueError:
        raise MalformedMessage(f"event field 'at' is not RFC 3339: {at!r}") from None
    charge = raw.get("charge", "")
    if charge and (kind != "refund" or not _is_charge_ref(charge)):
        raise MalformedMessage(f"event field 'charge' is not a refund's charge: {charge!r}")
    return Event(
        id=_str(raw, "id"),
        type=kind,
        account=_str(raw, "account"),
        amount=_int(raw, "amount", 0 if kind == CLOSE else 1),
        epoch=_int(raw, "epoch", 1),
        seq=_int(raw, "seq", 1),
        reason=_str(raw, "reason"),
        request_id=str(raw.get("request_id") or ""),
        at=at,
        charge=charge,
        trace=raw["trace"] if isinstance(raw.get("trace"), str) else "",
    )


def _is_charge_ref(value: Any) -> bool:
    try:
        ChargeRef.parse(value)
    except (ValueError, AttributeError):
        return False
    return True


def event_from_stream_entry(entry_id: str, fields: dict[str, str]) -> Event:
    """An event from its outbox stream entry (written by the gateway's Lua scripts).

    The entry id is the Redis time of the charge in ms, which becomes `at`.
    """
    value = {name: fields.get(letter, "") for letter, name in OUTBOX_ENTRY.items()}
    return Event(
        id=value["id"],
        type=value["type"],  # type: ignore[arg-type]
        account=value["account"],
        amount=int(value["amount"]),
        epoch=int(value["epoch"]),
        seq=int(value["seq"]),
        reason=value["reason"],
        request_id=value["request_id"],
        at=rfc3339_from_ms(int(entry_id.partition("-")[0])),
        charge=value["charge"],
        trace=value["trace"],
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """The events of one shard, in stream order, as one SQS message."""

    shard: int
    events: list[Event]

    def encode(self) -> str:
        body = {
            "v": EVENT_VERSION,
            "shard": self.shard,
            "events": self.events,  # orjson writes dataclasses natively, and fast
        }
        return orjson.dumps(body).decode()

    @property
    def group_id(self) -> str:
        return f"s{self.shard}"

    @property
    def deduplication_id(self) -> str:
        """Same events, same id: a resend after a lost reply is dropped by SQS."""
        return hashlib.sha256("\n".join(e.id for e in self.events).encode()).hexdigest()


def decode_batch(body: str | bytes) -> Batch:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedMessage("message body is not JSON") from None
    if not isinstance(raw, dict) or raw.get("v") != EVENT_VERSION:
        raise MalformedMessage("message is not a version 1 batch")
    shard, events = raw.get("shard"), raw.get("events")
    if type(shard) is not int or shard < 0:
        raise MalformedMessage("message field 'shard' must be a non-negative integer")
    if not isinstance(events, list) or not events:
        raise MalformedMessage("message field 'events' must be a non-empty list")
    return Batch(shard=shard, events=[event_from_dict(e) for e in events])
