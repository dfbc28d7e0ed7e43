"""Arguments checked by the API's own validators, untrusted text made safe to print, and
progress for long work.

Account ids, reasons and message bodies in the dead-letter queue come from whoever
wrote to the queue; printed raw, an escape sequence in them could rewrite the
operator's terminal (retitle it, hide lines, fake a prompt). Every character that is
not printable is shown as its `\\uXXXX` escape instead, which is also valid JSON.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Never, TypeVar

from tqdm import tqdm

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


def on_the_record(parser: argparse.ArgumentParser) -> None:
    """`--reason` and `--by`: why and who, for a command that corrects the books."""
    parser.add_argument("--reason", required=True, type=REASON, help="why, for the record")
    parser.add_argument(
        "--by", default=getpass.getuser(), type=OPERATOR, help="who (default: $USER)"
    )


def progress_bar(total: int, unit: str) -> tqdm[Never]:
    """Done out of the total, the rate and the time left, drawn on stderr at a terminal.

    With the output piped or redirected nothing is drawn, so it stays plain and `--json`
    exact.
    """
    at_a_terminal = sys.stdout.isatty() and sys.stderr.isatty()
    return tqdm(total=total, unit=f" {unit}", file=sys.stderr, disable=not at_a_terminal)


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
