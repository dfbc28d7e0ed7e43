"""The stored shapes of token accounting in Redis, each defined once.

The live account is a hash; every change to it appends an outbox entry to its shard's
stream. The Lua scripts in shared/lua/ write and read both by these names (Lua cannot
import them), and `tests/unit/test_shapes.py` reads every script and fails on a field
or letter that is not defined here, or on an entry written in another order.
"""

from __future__ import annotations

from enum import StrEnum


class AccountField(StrEnum):
    """The fields of an account's hash (`Keys.account`)."""

    BALANCE = "balance"
    EPOCH = "epoch"  # the hydration's epoch: which numbering `seq` belongs to
    SEQ = "seq"  # the last event's position within the epoch
    CALLS = "calls"  # paid memes, live (refunds take one back)
    SPENT = "spent"  # tokens spent on memes, live
    RL_TOKENS = "rl_tokens"  # the rate limiter's bucket
    RL_TS = "rl_ts"  # when the bucket was last filled, ms
    BASE_EPOCH = "base_epoch"  # the ledger's position the loaded balance includes
    BASE_SEQ = "base_seq"


# An outbox stream entry: one letter per event field, written in this order.
OUTBOX_ENTRY: dict[str, str] = {
    "i": "id",
    "t": "type",
    "a": "account",
    "n": "amount",
    "e": "epoch",
    "s": "seq",
    "r": "reason",
    "q": "request_id",
    "c": "charge",  # a refund's charge (`ChargeRef`), empty on debits and credits
    "x": "trace",  # the W3C traceparent of the request that made it, empty untraced
}
