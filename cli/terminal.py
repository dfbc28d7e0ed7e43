"""Arguments checked by the API's own validators, and untrusted text made safe to print.

Account ids, reasons and message bodies in the dead-letter queue come from whoever
wrote to the queue; printed raw, an escape sequence in them could rewrite the
operator's terminal (retitle it, hide lines, fake a prompt). Every character that is
not printable is shown as its `\\uXXXX` escape instead, which is also valid JSON.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from shared.errors import ApiError
from shared.validation import account_id, journal_reason, token_amount

T = TypeVar("T")


def argument(validate: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type=` that applies an API validator and reports its message."""

    def parse(raw: str) -> T:
        try:
            return validate(raw)
        except ApiError as error:
            raise argparse.ArgumentTypeError(error.message) from None

    parse.__name__ = validate.__name__  # argparse names the type in its messages
    return parse


def _integer(raw: str) -> int:
    try:
        return int(raw, 10)
    except ValueError:
        raise ApiError("invalid_params", f"not a whole number: {raw!r}") from None


ACCOUNT = argument(lambda raw: account_id(raw, "account"))
OPERATOR = argument(lambda raw: account_id(raw, "by"))
REASON = argument(journal_reason)
TOKENS = argument(lambda raw: token_amount(_integer(raw), "tokens", 0))


def safe(text: object) -> str:
    """`text` with every non-printable character (controls, bidi overrides) escaped."""
    return "".join(c if c.isprintable() else _escaped(ord(c)) for c in str(text))


def _escaped(code: int) -> str:
    """`\\uXXXX`, as a surrogate pair beyond the basic plane (as JSON writes it)."""
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def safe_json(text: str) -> str:
    """Indented JSON with its structure kept and anything unprintable inside escaped."""
    return "\n".join(safe(line) for line in text.split("\n"))
