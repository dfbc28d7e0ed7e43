"""One request traced from the gateway, through the meme service and SQS, to the
ledger's MongoDB update, exported over OTLP/HTTP to a collector on loopback."""

from __future__ import annotations

import secrets

import aiohttp
import pytest

from tests.otlp import TraceCollector
from tests.stack import PARIS, StackFactory, log_lines, wait_for


def traceparent() -> tuple[str, str]:
    """A caller's trace: its id, and the `traceparent` header that starts it (sampled)."""
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


async def test_a_request_is_traced_through_sqs_to_the_ledgers_mongodb_update(
    make_stack: StackFactory, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with TraceCollector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        stack = await make_stack(own_meme=True)  # its spans go to the collector
        headers = await stack.create_account(http, "traced", 5)
        trace_id, header = traceparent()
        async with http.get(
            f"{stack.gateway}/memes", params=PARIS, headers={**headers, "traceparent": header}
        ) as response:
            assert response.status == 200, await response.text()
        await stack.drained("traced")

        async def exported() -> bool:
            generated = any(s.name == "meme generate" for s in collector.of_trace(trace_id))
            linked = {s.name for s in collector.linked_to(trace_id)}
            return generated and {"relay send", "ledger apply"} <= linked

        await wait_for(exported, 20, "the meme service's spans, the relay's and the ledger's")
        request = {(s.service, s.name) for s in collector.of_trace(trace_id)}
        assert {
            ("maas-gateway", "GET /memes"),
            ("maas-gateway", "charge"),
            ("maas-meme", "meme generate"),
            ("maas-meme", "geocode"),
        } <= request, request
        assert any(s.service == "maas-gateway" and s.name.startswith("EVALSHA") for s in
                   collector.of_trace(trace_id)), "the charge script's Redis call"  # fmt: skip
        (relay,) = [s for s in collector.linked_to(trace_id) if s.name == "relay send"]
        assert relay.service == "maas-gateway"
        (apply,) = [s for s in collector.linked_to(trace_id) if s.name == "ledger apply"]
        updates = [
            s
            for s in collector.of_trace(apply.trace_id)
            if s.parent_span_id == apply.span_id and "update" in s.name
        ]
        assert updates, "the account's conditional update, under the apply span"
        roots = {s.name for s in collector.spans if not s.parent_span_id}
        assert roots <= {"GET /memes", "POST /v1/accounts", "relay send", "ledger apply"}, (
            "no trace of background polls, leases or probes"
        )

        # A caller's trace that is not sampled: nothing of it is kept, anywhere.
        unsampled, header = traceparent()
        async with http.get(
            f"{stack.gateway}/memes",
            params=PARIS,
            headers={**headers, "traceparent": header.removesuffix("-01") + "-00"},
        ) as response:
            assert response.status == 200
        await stack.drained("traced")

        credit_trace, header = traceparent()
        async with http.post(
            f"{stack.gateway}/v1/accounts/traced/credits",
            json={"amount": 3},
            headers={**stack.admin, "Idempotency-Key": "traced-1", "traceparent": header},
        ) as response:
            assert response.status == 202
        (line,) = log_lines(stack.processes["gateway"].log, "credit")
        assert line["trace_id"] == credit_trace

        async def credit_exported() -> bool:
            return bool(collector.of_trace(credit_trace))

        await wait_for(credit_exported, 20, "the credit's spans")
        assert collector.of_trace(unsampled) == []
        assert collector.linked_to(unsampled) == []


async def test_without_an_otlp_endpoint_nothing_is_traced(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack()
    await stack.create_account(http, "untraced", 5)
    (started,) = log_lines(stack.processes["gateway"].log, "starting")
    assert started["tracing"] is False
    assert all("trace_id" not in line for line in log_lines(stack.processes["gateway"].log))
