"""The report's outage: how long the fault's clients got no meme, by when answers came."""

from __future__ import annotations

from chaos.history import Record
from chaos.report import outages


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
