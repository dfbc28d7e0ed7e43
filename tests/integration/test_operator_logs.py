"""What an operator reads after an incident: each event leaves its line, with its fields,
in the real process's log file (JSON lines)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.faults.test_ledger_faults import create_accounts, event
from tests.stack import PARIS, ServiceStack, StackFactory, wait_for
from tests.stack import log_lines as lines


async def logged(
    log: Path, msg: str, count: int = 1, timeout_s: float = 30
) -> list[dict[str, Any]]:
    async def there() -> bool:
        return len(lines(log, msg)) >= count

    await wait_for(there, timeout_s, f"{count} {msg!r} line(s) in {log.name}")
    return lines(log, msg)


def log_of(stack: ServiceStack, name: str) -> Path:
    return stack.processes[name].log


async def test_a_gateway_says_when_it_starts_refunds_credits_drains_and_stops(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(jwt_secret="a-secret-that-must-never-reach-a-log-line-0123")
    gateway = log_of(stack, "gateway")
    (start,) = await logged(gateway, "starting")
    assert start["version"]
    assert start["settings"]["shards"] == stack.settings.shards
    assert "jwt_secret" not in start["settings"]
    assert start["settings"]["secrets_set"] == ["jwt_secret"]
    assert b"a-secret-that-must-never" not in gateway.read_bytes()
    await logged(gateway, "ready")

    headers = await stack.create_account(http, "logged", 10)
    assert (await stack.credit(http, "logged", 5, "buy-1"))[0] == 202
    assert (await stack.credit(http, "logged", 5, "buy-1"))[0] == 202
    new, again = await logged(gateway, "credit", 2)
    assert (new["account"], new["key"], new["tokens"], new["answer"]) == (
        "logged",
        "buy-1",
        5,
        "new",
    )
    assert (again["event_id"], again["answer"]) == (new["event_id"], "replayed")

    await stack.stop("meme")
    async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as answer:
        assert answer.status == 502
        request_id = answer.headers["X-Request-ID"]
    (refund,) = await logged(gateway, "refunded")
    assert refund["request_id"] == request_id
    assert (refund["account"], refund["tokens"], refund["reason"], refund["outcome"]) == (
        "logged",
        1,
        "meme_service_5xx",
        "applied",
    )
    assert refund["charge"].count(":") == 2, "epoch:seq:charge id"

    process = stack.processes.pop("gateway").process
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 60) == 0
    for msg in ("stopping: SIGTERM or SIGINT received", "drain begun", "drain ended", "stopped"):
        assert lines(gateway, msg), msg
    (ended,) = lines(gateway, "drain ended")
    assert (ended["left_in_flight"], ended["refunded"]) == (0, 0)


async def test_a_burst_of_meme_service_failures_is_one_line_with_counts(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """And with the access log on (every request sampled), each request has its line."""
    stack = await make_stack(access_log_sample=1.0)
    headers = await stack.create_account(http, "burst", 100)
    await stack.stop("meme")
    for _ in range(20):
        async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as answer:
            assert answer.status == 502
    (trouble,) = await logged(
        log_of(stack, "gateway"),
        "the meme service failed requests (by kind:error; each refunded)",
        timeout_s=15,
    )
    assert trouble["counts"] == {"text:upstream_error": 20}
    assert trouble["total"] == 20
    assert "request_id" not in trouble, "the line is about the interval, not one request"
    memes = [a for a in lines(log_of(stack, "gateway"), "access") if "/memes" in a["request"]]
    assert [a["status"] for a in memes] == [502] * 20


async def test_a_ledger_says_what_it_redelivers_holds_dead_letters_and_summarizes(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(max_receive_count=2, ledger_summary_every_s=1)
    ledger = log_of(stack, "ledger")
    await logged(ledger, "ready")
    await create_accounts(stack, {"held-l": 10, "fine-l": 10})
    await stack.send_batches([event("held-l", 2)], per_message=1)  # seq 1 never comes
    await stack.send_batches([event("fine-l", 1)], per_message=1)
    (dead,) = await logged(ledger, "message dead-lettered")
    assert dead["receive_count"] == 2
    assert "gap for 'held-l'" in dead["reason"]
    redelivered = await logged(ledger, "redelivered message")
    assert redelivered[0]["receive_count"] == 2
    assert redelivered[0]["outcome"] == "gap"

    async def summarized() -> bool:
        summaries = lines(ledger, "ledger summary")
        held: int = sum(s["held"] for s in summaries)
        return held >= 2 and sum(s["events_applied"] for s in summaries) >= 1

    await wait_for(summarized, 30, "summary lines counting the applied and held messages")
    assert await logged(ledger, "lease taken")
