"""The report: how long a fault's clients got no meme, by when answers came; and which
of a failing account's debits were paid for nothing."""

from __future__ import annotations

from chaos.history import Record
from chaos.report import outages, unrefunded


def answer(t: float, gateway: int, status: int | None = 200) -> Record:
    return {"t": t, "type": "meme", "sent": t - 0.01, "gateway": gateway, "status": status}


def test_a_frozen_gateway_is_out_for_its_clients_only_until_its_answers_flow_again() -> None:
    history = [
        {"t": 10.0, "type": "fault", "kind": "sigstop", "target": "gateway-2", "hold_s": 4},
        *[answer(10.0 + i / 10, 1) for i in range(60)],  # the other gateway answers all along
        answer(10.5, 2, None),
        answer(14.2, 2),  # the queued requests are answered once it is continued
        {"t": 14.1, "type": "recovered", "kind": "sigstop", "target": "gateway-2", "began": 10.0},
        *[answer(14.3 + i, 2) for i in range(10)],
    ]
    row = outages(history)["sigstop"]
    assert (row["count"], row["failed"], row["worst_outage_s"]) == (1, 1, 4.2)


def test_a_debit_of_a_failed_meme_without_a_counted_refund_is_named() -> None:
    history: list[Record] = [
        {"t": 1.0, "type": "meme", "id": "m-ok", "account": "a", "status": 200},
        {"t": 2.0, "type": "meme", "id": "m-refunded", "account": "a", "status": 502},
        {"t": 3.0, "type": "meme", "id": "m-paid", "account": "a", "status": 504},
        {"t": 4.0, "type": "meme", "id": "m-void", "account": "a", "status": 504},
    ]

    def entry(kind: str, seq: int, request: str, **more: object) -> Record:
        return {"type": kind, "account": "a", "amount": 1, "epoch": 1, "seq": seq,
                "request_id": request, **more}  # fmt: skip

    journal = [
        entry("debit", 1, "m-ok"),
        entry("debit", 2, "m-refunded"),
        entry("refund", 3, "m-refunded"),
        entry("debit", 4, "m-paid"),
        entry("refund", 5, "m-paid", voided_for="x"),  # counts nothing
        entry("debit", 6, "m-void", voided_for="y"),
    ]
    assert unrefunded(history, journal, "a") == [
        "debit 1 at 1:4 for m-paid, answered 504, no refund counted"
    ]
