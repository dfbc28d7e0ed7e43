"""What every way in checks before it acts: the HTTP API, the console and the CLI alike.

One validator per kind of input, raising the API's `invalid_params` error, so an
operator typing at a terminal meets the same rules as a program calling the API: an
account id the store's key alphabet allows, amounts within the exact-integer bounds,
and a journal reason a person can read.
"""

from __future__ import annotations

import re
from typing import Any

from shared.contract import MAX_TOKENS_PER_CALL
from shared.errors import ApiError

# `|` for Auth0's subjects (`auth0|64f1...`); 24 hex digits for the reference's ObjectIds.
ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@|-]{0,63}")
MAX_JOURNAL_REASON_CHARS = 500
MAX_CREDIT_REASON_CHARS = 100
# The characters an SQS message may hold (its documented set, as code point ranges);
# anything else would make SQS refuse the batch that carries the event, and stall its
# shard's relay.
SQS_RANGES = ((0x9, 0xA), (0xD, 0xD), (0x20, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF))
SQS_CHARACTERS = re.compile(
    "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in SQS_RANGES) + "]*"
)


def account_id(raw: Any, field: str = "id") -> str:
    if not isinstance(raw, str) or not ACCOUNT_ID.fullmatch(raw):
        raise ApiError(
            "invalid_params",
            f"{field}: 1-64 characters of letters, digits and _ . : @ | -",
            field=field,
        )
    return raw


def token_amount(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's integers include 5.0
    if type(value) is not int or not minimum <= value <= MAX_TOKENS_PER_CALL:
        raise ApiError(
            "invalid_params",
            f"{field}: must be an integer from {minimum} to {MAX_TOKENS_PER_CALL}",
            field=field,
        )
    return value


def journal_reason(raw: Any, field: str = "reason") -> str:
    """Why an operator acted, as the journal keeps it: printable text, trimmed."""
    reason = raw.strip() if isinstance(raw, str) else ""
    if not reason or len(reason) > MAX_JOURNAL_REASON_CHARS or not reason.isprintable():
        raise ApiError(
            "invalid_params",
            f"{field}: say why, for the journal, in 1-{MAX_JOURNAL_REASON_CHARS} printable "
            "characters",
            field=field,
        )
    return reason


def credit_reason(raw: Any) -> str:
    """Why tokens were credited: it travels in the event, so only what SQS carries."""
    if (
        not isinstance(raw, str)
        or not 0 < len(raw) <= MAX_CREDIT_REASON_CHARS
        or not SQS_CHARACTERS.fullmatch(raw)
    ):
        raise ApiError(
            "invalid_params",
            f"reason: a string of 1-{MAX_CREDIT_REASON_CHARS} characters, none of them a "
            "control character other than tab and newlines, a surrogate, U+FFFE or U+FFFF",
            field="reason",
        )
    return raw
