"""The ledger applies every event exactly once, whatever fails."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections import Counter
from typing import Any

import aiohttp
import orjson

from shared.accounting.accounts import AccountStore
from shared.accounting.events import Event, EventType
from shared.keys import Keys
from shared.stores import mongo_client, redis_client
from tests.stack import PARIS, PrivateStore, ServiceStack, StackFactory, wait_for


def event(account: str, seq: int, kind: EventType = "debit", amount: int = 1) -> Event:
    reason = "purchase" if kind == "credit" else "meme:text"
    return Event(
        id=uuid.uuid4().hex,
        type=kind,
        account=account,
        amount=amount,
        epoch=1,
        seq=seq,
        reason=reason,
        request_id=uuid.uuid4().hex,
        at="2026-11-28T12:00:00.000Z",
    )


async def create_accounts(stack: ServiceStack, balances: dict[str, int]) -> None:
    store = AccountStore(stack.mongo())
    for account, balance in balances.items():
        await store.create(account, balance)


async def mongo_accounts(stack: ServiceStack) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d async for d in stack.mongo()["accounts"].find({})}


async def applied_up_to(stack: ServiceStack, positions: dict[str, int], timeout_s: float) -> None:
    async def reached() -> bool:
        accounts = await mongo_accounts(stack)
        return all(accounts[a]["seq"] == seq for a, seq in positions.items())

    await wait_for(reached, timeout_s, f"the ledger to apply up to {positions}")


async def test_messages_delivered_two_and_three_times_count_once(make_stack: StackFactory) -> None:
    stack = await make_stack()
    await create_accounts(stack, {"dup-a": 50, "dup-b": 50})
    twice = [event("dup-a", n) for n in range(1, 6)]
    thrice = [event("dup-b", n, amount=2) for n in range(1, 4)]
    await stack.send_batches(twice, per_message=2, copies=2)
    await stack.send_batches(thrice, per_message=3, copies=3)
    await applied_up_to(stack, {"dup-a": 5, "dup-b": 3}, 30)

    async def queue_empty() -> bool:
        return await stack.queue_depth() == 0

    await wait_for(queue_empty, 30, "every copy to be consumed")
    accounts = await mongo_accounts(stack)
    assert (accounts["dup-a"]["balance"], accounts["dup-b"]["balance"]) == (45, 44)
    assert accounts["dup-b"]["usage"] == {"calls": 3, "tokens_spent": 6, "by_kind": {"text": 3}}
    assert await stack.dead_letters() == 0


async def test_sigkill_ten_times_during_5000_events_leaves_exact_balances(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(max_receive_count=100)
    accounts = [f"kill-{n:02d}" for n in range(50)]
    await create_accounts(stack, dict.fromkeys(accounts, 1000))
    rng = random.Random(7)
    events: list[Event] = []
    expected = {a: {"balance": 1000, "calls": 0, "spent": 0} for a in accounts}
    for account in accounts:
        for seq in range(1, 101):
            kind: EventType = rng.choice(["debit", "debit", "debit", "refund", "credit"])
            amount = rng.choice([1, 2]) if kind != "credit" else 10
            events.append(event(account, seq, kind, amount))
            sign = {"debit": 1, "refund": -1, "credit": 0}[kind]
            expected[account]["balance"] += -amount if kind == "debit" else amount
            expected[account]["calls"] += sign
            expected[account]["spent"] += sign * amount
    assert len(events) == 5000
    await stack.stop("ledger")  # queue everything first, so every kill lands mid-run
    await stack.send_batches(events, per_message=2)
    await stack.start("ledger")

    async def applied() -> int:
        return sum(doc["seq"] for doc in (await mongo_accounts(stack)).values())

    kills = 0
    while kills < 10:
        mark = await applied()
        assert mark < 5000, f"the run ended after only {kills} kills"

        async def progressed(mark: int = mark) -> bool:
            return await applied() >= mark + 100

        await wait_for(progressed, 60, "the ledger to make progress")
        stack.kill("ledger")
        kills += 1
        await stack.start("ledger")

    await applied_up_to(stack, dict.fromkeys(accounts, 100), 120)
    final = await mongo_accounts(stack)
    for account in accounts:
        usage = final[account]["usage"]
        got = {"balance": final[account]["balance"], "calls": usage["calls"]}
        got["spent"] = usage["tokens_spent"]
        assert got == expected[account], account


async def test_poison_and_gaps_reach_the_dlq_with_reasons_and_redrive_repairs(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(max_receive_count=2)
    await create_accounts(stack, {"gap-x": 10, "fine-y": 10})
    assert stack_shard(stack, "gap-x") != stack_shard(stack, "fine-y")
    poison_group = next(
        g for g in range(stack.settings.shards)
        if g not in (stack_shard(stack, "gap-x"), stack_shard(stack, "fine-y"))
    )  # fmt: skip
    # Controls a terminal obeys (CSI in its one-character C1 form, a bidi override).
    await stack.send_raw("{not a batch \x9b2J\u202e", f"s{poison_group}")
    await stack.send_batches([event("gap-x", 2)], per_message=1)
    await stack.send_batches([event("fine-y", 1), event("fine-y", 2)], per_message=1)
    await applied_up_to(stack, {"fine-y": 2}, 30)

    async def two_dead_letters() -> bool:
        return await stack.dead_letters() == 2

    await wait_for(two_dead_letters, 60, "both bad messages to reach the DLQ")
    lines = await dead_letter_lines(stack)
    assert len(lines) == 2, lines
    gap_line = next(line for line in lines if "gap-x" in line)
    poison_line = next(line for line in lines if "gap-x" not in line)
    assert "seq=2-2" in gap_line
    assert "reason=gap for 'gap-x'" in gap_line
    assert "receives=2" in gap_line
    assert "reason=malformed" in poison_line
    gap_id, poison_id = gap_line.split()[0], poison_line.split()[0]

    code, shown = await stack.maas("dlq", "show", gap_id)
    assert code == 0
    assert orjson.loads(shown)["events"][0]["seq"] == 2
    code, shown = await stack.maas("dlq", "show", poison_id)
    assert code == 0
    assert "\x9b" not in shown, "a raw control reached the terminal"
    assert "\u202e" not in shown, "a raw control reached the terminal"
    assert orjson.loads(shown)["events"] == "{not a batch \x9b2J\u202e"

    await stack.send_batches([event("gap-x", 1)], per_message=1)  # the missing event arrives
    await applied_up_to(stack, {"gap-x": 1}, 30)
    assert (await stack.maas("dlq", "purge", poison_id))[0] == 2  # needs --yes
    assert (await stack.maas("dlq", "purge", poison_id, "--yes"))[0] == 0
    code, output = await stack.maas("dlq", "redrive", "--all")
    assert code == 0
    assert gap_id in output
    await applied_up_to(stack, {"gap-x": 2, "fine-y": 2}, 30)
    assert (await mongo_accounts(stack))["gap-x"]["balance"] == 8
    assert await stack.dead_letters() == 0


def stack_shard(stack: ServiceStack, account: str) -> int:
    return Keys(stack.settings.shards).shard_of(account)


async def five_memes_relayed_with_the_ledger_stopped(
    stack: ServiceStack, http: aiohttp.ClientSession, account: str
) -> dict[str, str]:
    """A new account with 100 tokens charged 5 times, the events in SQS, none applied."""
    headers = await stack.create_account(http, account, 100)
    await stack.stop("ledger")
    for _ in range(5):
        async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
            assert r.status == 200

    async def relayed() -> bool:
        return await stack.redis_outbox_entries() == 0

    await wait_for(relayed, 10, "the charges to reach SQS")
    return headers


async def test_redis_losing_its_data_rehydrates_and_reconcile_shows_the_bounded_overdraft(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack()
    headers = await five_memes_relayed_with_the_ledger_stopped(stack, http, "flushed")
    await stack.flush_redis()
    remaining = await memes(stack, http, headers, 3)
    assert remaining == [99, 98, 97]  # re-hydrated from MongoDB, which had not seen the 5 yet

    await stack.start("ledger")
    await stack.drained("flushed")
    stored = await stack.mongo_account("flushed")
    assert stored is not None
    assert stored["balance"] == 100 - 8  # every charge counted, none twice
    assert (stored["epoch"], stored["seq"]) == (2, 3)
    code, output = await stack.maas("reconcile", "--account", "flushed", "--json")
    report = orjson.loads(output)
    assert code == 1
    assert report["accounts"][0]["drift"] == 5  # exactly what was in flight at the loss
    assert report["accounts"][0]["status"] == "drift"


async def test_mongodb_down_for_10_s_loses_nothing(
    private_store: PrivateStore, make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(mongo_url=private_store.url)
    try:
        headers = await stack.create_account(http, "patient", 1000)
        statuses: Counter[int] = Counter()

        async def memes(count: int) -> None:
            for _ in range(count):
                async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
                    statuses[r.status] += 1
                await asyncio.sleep(0.02)

        await memes(20)
        await asyncio.to_thread(private_store.stop, private_store.front)
        await asyncio.gather(memes(100), asyncio.sleep(10))  # the outage lasts 10 s
        await asyncio.to_thread(private_store.start, private_store.front)
        await memes(20)
        assert statuses == {200: 140}
        await stack.drained("patient", timeout_s=60)
        stored = await stack.mongo_account("patient")
        assert stored is not None
        assert (stored["balance"], stored["seq"]) == (860, 140)
        assert await stack.dead_letters() == 0
    finally:
        await stack.close()


async def test_sigterm_finishes_what_the_worker_holds_and_exits_cleanly(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    accounts = [f"term-{n}" for n in range(20)]
    await create_accounts(stack, dict.fromkeys(accounts, 500))
    await stack.stop("ledger")
    await stack.send_batches(
        [event(a, seq) for a in accounts for seq in range(1, 51)], per_message=2
    )
    await stack.start("ledger")

    async def started() -> bool:
        applied: int = sum(d["seq"] for d in (await mongo_accounts(stack)).values())
        return applied > 0

    await wait_for(started, 30, "the ledger to start applying")
    ledger = stack.processes.pop("ledger").process
    ledger.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(ledger.wait, 30) == 0
    await stack.start("ledger")
    await applied_up_to(stack, dict.fromkeys(accounts, 50), 60)
    assert {d["balance"] for d in (await mongo_accounts(stack)).values()} == {450}


async def dead_letter_lines(stack: ServiceStack) -> list[str]:
    code, listing = await stack.maas("dlq", "list")
    assert code == 0, listing
    return [line for line in listing.splitlines() if " shard=" in line]


async def test_twenty_five_dead_letters_of_one_group_are_listed_and_redriven_in_order(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(max_receive_count=3)
    await stack.send_batches([event("late", n) for n in range(1, 26)], per_message=1)

    async def all_dead() -> bool:
        return await stack.dead_letters() == 25

    await wait_for(all_dead, 90, "25 messages of one group to reach the DLQ")
    lines = await dead_letter_lines(stack)
    assert len(lines) == 25, lines
    assert [line.split("seq=")[1].split()[0] for line in lines] == [
        f"{n}-{n}" for n in range(1, 26)
    ]
    assert all("unknown account 'late'" in line for line in lines)
    code, shown = await stack.maas("dlq", "show", lines[24].split()[0])
    assert (code, orjson.loads(shown)["events"][0]["seq"]) == (0, 25)

    await create_accounts(stack, {"late": 100})
    # Later events of the group arrive and retry (they gap) while the first 25 are dead.
    await stack.send_batches([event("late", n) for n in range(26, 31)], per_message=1)
    code, output = await stack.maas("dlq", "redrive", "--all")
    assert code == 0, output
    assert output.count("redriven ") >= 25
    try:
        await applied_up_to(stack, {"late": 30}, 20)
    except AssertionError:
        # The later events used up their receives before the redrive landed (a busy
        # machine): they are dead letters in their turn, and the next redrive sends them.
        code, output = await stack.maas("dlq", "redrive", "--all")
        assert code == 0, output
        await applied_up_to(stack, {"late": 30}, 30)
    assert (await mongo_accounts(stack))["late"]["balance"] == 70
    assert await stack.dead_letters() == 0
    assert await dead_letter_lines(stack) == []


async def test_dead_letters_that_no_ledger_received_are_listed_shown_and_redriven(
    make_stack: StackFactory,
) -> None:
    """Messages moved to the DLQ by hand (or by a ledger that died on the last receive):
    FIFO shows a reader that does not delete ten of a group at most, so the ledger moves
    them into its index, where all 25 are listed within a few seconds."""
    stack = await make_stack()
    await create_accounts(stack, {"moved": 100})
    await stack.send_batches([event("moved", n) for n in range(1, 26)], 1, dead_letters=True)

    async def all_listed() -> bool:
        return len(await dead_letter_lines(stack)) == 25

    await wait_for(all_listed, 30, "the 25 moved messages to be listed")
    lines = await dead_letter_lines(stack)
    assert all("reason=unknown (arrived without a ledger receive)" in line for line in lines)
    assert [line.split("seq=")[1].split()[0] for line in lines] == [
        f"{n}-{n}" for n in range(1, 26)
    ]
    assert await stack.queue_depth(dead_letters=True) == 0, "moved out of the DLQ"
    code, shown = await stack.maas("dlq", "show", lines[24].split()[0])
    assert (code, orjson.loads(shown)["events"][0]["seq"]) == (0, 25)
    code, output = await stack.maas("dlq", "redrive", "--all")
    assert (code, output.count("redriven ")) == (0, 25), output
    assert (await mongo_accounts(stack))["moved"]["balance"] == 75
    assert await stack.dead_letters() == 0


async def test_purged_events_then_settle_make_later_events_apply_and_reconcile_clean(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(max_receive_count=2, reconcile_page_size=1)
    await create_accounts(stack, {"idle-a": 5, "idle-z": 5})  # reconcile pages past them
    headers = await five_memes_relayed_with_the_ledger_stopped(stack, http, "lost")
    client = mongo_client(stack.settings)
    accounts = client[stack.settings.mongo_db]["accounts"]
    try:
        stored = await accounts.find_one({"_id": "lost"})
        assert stored is not None
        await accounts.delete_one({"_id": "lost"})  # the ledger cannot apply: dead letters
        await stack.start("ledger")

        async def dead() -> bool:
            return bool(await dead_letter_lines(stack)) and await stack.queue_depth() == 0

        await wait_for(dead, 60, "the charges to be dead letters")
        await accounts.insert_one(stored)
    finally:
        await client.close()
    dead_ids = [line.split()[0] for line in await dead_letter_lines(stack)]

    code, output = await stack.maas("reconcile", "--json")
    assert code == 1, output
    report = orjson.loads(output)
    assert report["idle"] is True
    assert report["statuses"] == {"behind": 1, "not_hydrated": 2}
    (row,) = [row for row in report["accounts"] if row["status"] == "behind"]
    assert (row["account"], row["dead_letters"]) == ("lost", dead_ids)

    assert (await stack.maas("dlq", "purge", "--all", "--yes"))[0] == 0
    assert await stack.dead_letters() == 0
    assert (await stack.maas("reconcile"))[0] == 1  # purged: MongoDB never catches up
    code, output = await stack.maas(
        "ledger", "settle", "--account", "lost", "--reason", "purged 5 charges", "--by", "ops"
    )
    assert code == 0, output
    assert "balance 95 -> 100" in output
    remaining = await memes(stack, http, headers, 3)
    assert remaining == [99, 98, 97]
    await stack.drained("lost")
    stored_after = await stack.mongo_account("lost")
    assert stored_after is not None
    assert (stored_after["balance"], stored_after["seq"]) == (97, 3)
    code, output = await stack.maas("reconcile")
    assert code == 0, output
    code, history = await stack.maas("ledger", "history", "--account", "lost")
    assert "settle balance 100" in history, history
    assert "by ops: purged 5 charges" in history


async def test_a_credit_retried_after_a_redis_rollback_ends_equal_in_both_stores(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """1(b) as billing and a failover do it: the credit is answered and applied, Redis
    fails over to a replica that had neither the credit nor its record, billing retries.
    Both stores end with the credit once, and reconcile needs no operator step."""
    stack = await make_stack()
    await stack.create_account(http, "billed", 10)
    async with http.get(f"{stack.gateway}/v1/tokens", headers=stack.auth("billed")) as r:
        assert (await r.json())["tokens"] == 10  # loaded into Redis
    replica = await stack.redis_account("billed")
    status, first = await stack.credit(http, "billed", 5, "invoice-9")
    assert (status, first["tokens"]) == (202, 15)
    await stack.drained("billed")
    keys = Keys(stack.settings.shards)
    redis = redis_client(stack.settings)
    try:
        async with redis.pipeline(transaction=True) as failover:
            failover.delete(keys.account("billed"), keys.idempotency("billed", "invoice-9"))
            failover.hset(
                keys.account("billed"), items=[p for field in replica.items() for p in field]
            )
            await failover.execute()
    finally:
        await redis.aclose()

    assert await stack.credit(http, "billed", 5, "invoice-9") == (202, first)
    await stack.drained("billed")
    stored = await stack.mongo_account("billed")
    assert stored is not None
    assert (stored["balance"], (await stack.redis_account("billed"))["balance"]) == (15, "15")
    code, output = await stack.maas("reconcile", "--account", "billed")
    assert code == 0, output


async def test_a_redis_rollback_that_reuses_positions_is_reported_and_settle_makes_it_exact(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """A failover to a replica behind: Redis numbers new charges like ones it had shipped."""
    stack = await make_stack(max_receive_count=2)
    headers = await stack.create_account(http, "rolled", 20)
    await memes(stack, http, headers, 2)
    await stack.drained("rolled")
    redis = redis_client(stack.settings)
    key = Keys(stack.settings.shards).account("rolled")
    try:
        replica = await stack.redis_account("rolled")  # what the replica had: two charges
        await memes(stack, http, headers, 3)
        await stack.drained("rolled")  # shipped and applied: seqs 3, 4, 5
        async with redis.pipeline(transaction=True) as failover:
            failover.delete(key)
            failover.hset(key, items=[part for field in replica.items() for part in field])
            await failover.execute()
    finally:
        await redis.aclose()
    assert await memes(stack, http, headers, 4) == [17, 16, 15, 14]  # seqs 3, 4, 5 again, 6

    async def held_to_the_dlq() -> bool:
        return bool(await dead_letter_lines(stack)) and await stack.queue_depth() == 0

    await wait_for(held_to_the_dlq, 60, "the reused positions to reach the DLQ")
    code, output = await stack.maas("reconcile", "--json")
    assert code == 1, output
    (row,) = orjson.loads(output)["accounts"]
    assert (row["account"], row["status"], len(row["reused_events"])) == ("rolled", "reused", 3)
    assert row["dead_letters"]

    code, output = await stack.maas(
        "ledger", "settle", "--account", "rolled", "--reason", "failover lost its tail"
    )
    assert code == 0, output
    assert output.count("adopted debit 1 at reused epoch 1") == 3
    assert "balance 14 -> 11" in output  # 20 tokens, 9 memes delivered
    code, output = await stack.maas("dlq", "redrive", "--all")
    assert code == 0, output
    assert await stack.dead_letters() == 0
    assert await memes(stack, http, headers, 1) == [10]
    await stack.drained("rolled")
    code, output = await stack.maas("reconcile")
    assert code == 0, output
    stored = await stack.mongo_account("rolled")
    assert stored is not None
    assert (stored["balance"], stored["usage"]["calls"], stored["usage"]["tokens_spent"]) == (
        10,
        10,
        10,
    )


async def memes(
    stack: ServiceStack, http: aiohttp.ClientSession, headers: dict[str, str], count: int
) -> list[int]:
    """Text memes one after another; the tokens left after each."""
    remaining = []
    for _ in range(count):
        async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
            assert r.status == 200, await r.text()
            remaining.append((await r.json())["tokens_remaining"])
    return remaining
