"""Which held refunds a settle judges now, and which wait for their charge."""

from __future__ import annotations

import pytest

from services.ledger.domain.apply import Position
from services.ledger.usecases.settle import charge_may_still_come
from shared.accounting.events import Event


def refund_at(seq: int, charge_seq: int) -> Event:
    return Event("r", "refund", "a", 2, 1, seq, "meme:ai", "q", "2026-12-06T00:00:00Z",
                 charge=f"1:{charge_seq}:c")  # fmt: skip


@pytest.mark.parametrize(
    ("refund_seq", "charge_seq", "applied_seq", "waits"),
    [
        # Found by `make chaos ROLLBACK=1`: Redis renumbered, the refund took seq 88, its
        # charge (shipped before the rollback) sat at 91 in a dead letter: voiding the
        # refund then made the client pay for a 504.
        (88, 91, 90, True),
        (88, 91, 91, False),  # MongoDB reached the charge's position: judge it now
        (92, 91, 90, False),  # the usual order, charge first: judged as always
    ],
)
def test_a_refund_numbered_before_its_charge_waits_until_mongodb_reaches_the_charge(
    refund_seq: int, charge_seq: int, applied_seq: int, waits: bool
) -> None:
    assert (
        charge_may_still_come(refund_at(refund_seq, charge_seq), Position(1, applied_seq)) is waits
    )
