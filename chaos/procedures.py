"""After the faults: wait for the pipeline to drain, then follow the runbooks
(docs/slos.md) with the operators' own CLI until `maas reconcile` has nothing to say;
then read the books the checker judges.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from chaos.checker import Observed
from chaos.history import History
from chaos.stack import ChaosStack
from shared.keys import Keys
from shared.stores import mongo_client, redis_client

POLL_S = 1.0
ROUNDS = 6  # settle and redrive, then look again
SETTLES_PER_CALL = 100
SETTLED = ("reused", "stranded", "drift")  # the statuses whose runbook says settle
# What `maas dlq redrive` prints for a message it leaves until an account is settled.
SETTLE_ADVICE = re.compile(r"run `maas ledger settle --account (\S+)`")


async def unsettled_in_redis(stack: ChaosStack) -> int:
    """Charges neither confirmed nor refunded yet (the sweeper's work still to come), and
    outbox entries not yet relayed."""
    keys = Keys(stack.settings.shards)
    redis = redis_client(stack.settings)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for shard in range(stack.settings.shards):
                pipe.hlen(keys.pending(shard))
                pipe.xlen(keys.outbox(shard))
            return sum(await pipe.execute())
    finally:
        await redis.aclose()


async def reconcile(stack: ChaosStack) -> dict[str, Any]:
    code, output = await asyncio.to_thread(stack.maas, "reconcile", "--json")
    if code not in (0, 1):
        raise RuntimeError(f"maas reconcile failed ({code}):\n{output}")
    report: dict[str, Any] = orjson.loads(output.strip().splitlines()[-1])
    return report


async def drained(stack: ChaosStack, timeout_s: float) -> dict[str, Any]:
    """Until no charge is pending and the pipeline is idle with no account `pending`.

    `maas reconcile` is asked only once Redis holds no pending charge and no unrelayed
    entry: each call is a process start (2 s of CPU), and the run's processes are still
    settling meanwhile."""
    deadline = time.monotonic() + timeout_s
    statuses: dict[str, int] = {}
    while True:
        unsettled = await unsettled_in_redis(stack)
        if unsettled == 0:
            report = await reconcile(stack)
            statuses = report["statuses"]
            if report["idle"] and not statuses.get("pending"):
                return report
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the pipeline did not drain in {timeout_s} s: {unsettled} charges pending or "
                f"entries unrelayed in Redis; reconcile said {statuses}"
            )
        await asyncio.sleep(POLL_S)


async def follow_runbooks(
    stack: ChaosStack, history: History, timeout_s: float
) -> tuple[Counter[str], Counter[str]]:
    """Settle what reconcile says to settle (and what a redrive says to), redrive the
    dead letters, until clean.

    Returns the commands run, and the statuses reconcile gave once the pipeline was
    first idle (before any procedure): what the faults left for an operator."""
    steps: Counter[str] = Counter()
    found: Counter[str] = Counter()
    advised: set[str] = set()  # accounts a redrive said to settle
    for round_ in range(ROUNDS):
        report = await drained(stack, timeout_s)
        drifting = [r for r in report["accounts"] if r["status"] not in ("ok", "not_hydrated")]
        letters = await dead_letters(stack)
        if round_ == 0:
            found.update(row["status"] for row in drifting)
            found["dead letters"] += len(letters)
        if not drifting and not letters:
            break
        to_settle = sorted(
            {row["account"] for row in drifting if row["status"] in SETTLED} | advised
        )
        advised = set()
        for first in range(0, len(to_settle), SETTLES_PER_CALL):
            accounts = to_settle[first : first + SETTLES_PER_CALL]
            named = [arg for account in accounts for arg in ("--account", account)]
            reason = "chaos run: " + ", ".join(sorted(found_in(drifting, accounts)))
            await _maas(stack, history, steps, "ledger", "settle", *named, "--reason", reason,
                        "--by", "chaos")  # fmt: skip
        if letters or any(row["status"] == "behind" for row in drifting):
            output = await _maas(stack, history, steps, "dlq", "redrive", "--all")
            advised = set(SETTLE_ADVICE.findall(output))
    return steps, found


def found_in(rows: list[dict[str, Any]], accounts: list[str]) -> set[str]:
    chosen = set(accounts)
    return {row["status"] for row in rows if row["account"] in chosen}


async def _maas(stack: ChaosStack, history: History, steps: Counter[str], *args: str) -> str:
    code, output = await asyncio.to_thread(stack.maas, *args)
    step = " ".join(args[:2])
    steps[step] += 1
    history.write("procedure", command=list(args), exit=code, output=output[-2000:])
    return output


async def dead_letters(stack: ChaosStack) -> list[dict[str, Any]]:
    """What `maas dlq list` shows: every dead letter, in the index or still in the DLQ."""
    code, output = await asyncio.to_thread(stack.maas, "dlq", "list")
    if code == 0 and "the dead-letter queue is empty" in output and "note:" not in output:
        return []
    return [{"line": line} for line in output.splitlines() if line.strip()]


async def observe(
    stack: ChaosStack, accounts: list[str], journal_file: Path
) -> tuple[Observed, dict[str, Any]]:
    """Both books for every account, the dead letters and reconcile's last word; and
    what the journal says was refunded, with the requests the refunds name (for the
    report's diagnosis, never for the verdict). The accounts' journal is written to
    `journal_file`, to trace a failure to its events."""
    keys = Keys(stack.settings.shards)
    redis, mongo = redis_client(stack.settings), mongo_client(stack.settings)
    db = mongo[stack.settings.mongo_db]
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hget(keys.account(account), "balance")
            live = await pipe.execute()
        stored = {
            doc["_id"]: int(doc["balance"])
            async for doc in db["accounts"].find({"_id": {"$in": accounts}}, {"balance": 1})
        }
        refunded, refunded_ids = 0, set()
        with journal_file.open("wb") as out:
            async for entry in (
                db["ledger"]
                .find({"account": {"$in": accounts}})
                .sort([("account", 1), ("epoch", 1), ("seq", 1)])
            ):
                out.write(orjson.dumps(entry, default=str) + b"\n")
                if entry["type"] == "refund" and entry.get("voided_for") is None:
                    refunded += int(entry["amount"])
                    refunded_ids.add(entry["request_id"])
    finally:
        await redis.aclose()
        await mongo.close()
    code, output = await asyncio.to_thread(stack.maas, "reconcile")
    observed = Observed(
        redis={a: None if b is None else int(b) for a, b in zip(accounts, live, strict=True)},
        mongo={a: stored.get(a) for a in accounts},
        dead_letters=await dead_letters(stack),
        reconcile_exit=code,
        reconcile_output=output,
        left_running=[],
    )
    return observed, {"refunded": refunded, "refunded_ids": refunded_ids}
