"""Cost per store operation at a given size, to choose and check the local store.

    python -m bench.store_probe --url mongodb://127.0.0.1:PORT --pid PID \
        --accounts 100000 --events 1000000

Seeds `accounts` and the journal in bulk, then times each access path the services use
and reads the store processes' CPU (utime+stime of the trees under --pid) around it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import AsyncMongoClient

from bench import procstat
from services.ledger.adapters.mongo import LedgerStore, journal_id
from shared.stores import MongoDoc

BATCH = 1000


def account_doc(i: int) -> MongoDoc:
    return {"_id": f"acct-{i:07d}", "balance": 1000, "epoch": 1, "seq": 0, "hydrations": 1}


def journal_doc(account: str, seq: int) -> MongoDoc:
    return {
        "_id": journal_id(account, 1, seq),
        "event_id": f"ev-{account}-{seq}",
        "account": account,
        "type": "debit",
        "amount": 1,
        "epoch": 1,
        "seq": seq,
    }


async def seed(db: Any, accounts: int, events: int) -> None:
    for start in range(0, accounts, BATCH):
        docs = [account_doc(i) for i in range(start, min(start + BATCH, accounts))]
        await db["accounts"].insert_many(docs, ordered=False)
    per_account = max(1, events // accounts)
    batch: list[MongoDoc] = []
    for i in range(accounts):
        for seq in range(1, per_account + 1):
            batch.append(journal_doc(f"acct-{i:07d}", seq))
            if len(batch) == BATCH:
                await db["ledger"].insert_many(batch, ordered=False)
                batch = []
    if batch:
        await db["ledger"].insert_many(batch, ordered=False)


async def timed(
    name: str, count: int, op: Callable[[int], Awaitable[object]], pids: dict[str, int]
) -> dict[str, Any]:
    before = procstat.snapshot(pids)
    started = time.perf_counter()
    for i in range(count):
        await op(i)
    elapsed = time.perf_counter() - started
    cpu = procstat.usage(before, procstat.snapshot(pids), elapsed)
    store_cpu = sum(float(tree["cpu_s"]) for tree in cpu.values())
    return {
        "op": name,
        "ms_per_op": round(1000 * elapsed / count, 3),
        "store_cpu_us_per_op": round(1e6 * store_cpu / count, 1),
    }


async def probe(db: Any, accounts: int, pids: dict[str, int]) -> list[dict[str, Any]]:
    rng = random.Random(7)
    pick = [f"acct-{rng.randrange(accounts):07d}" for _ in range(400)]
    seqs = iter(range(10_000_000, 20_000_000))

    async def find_one(i: int) -> object:
        return await db["accounts"].find_one({"_id": pick[i]})

    async def conditional_update(i: int) -> object:
        doc = await db["accounts"].find_one({"_id": pick[i]}, {"epoch": 1, "seq": 1})
        return await db["accounts"].update_one(
            {"_id": pick[i], "epoch": doc["epoch"], "seq": doc["seq"]},
            {"$inc": {"balance": -1}, "$set": {"seq": doc["seq"] + 1}},
        )

    async def journal_insert(i: int) -> object:
        docs = [journal_doc(pick[(i + k) % len(pick)], next(seqs)) for k in range(100)]
        return await db["ledger"].insert_many(docs, ordered=False)

    async def history(i: int) -> object:
        return await LedgerStore(db).history(pick[i], 20)

    last = {"id": ""}

    async def page(i: int) -> object:
        cursor = db["accounts"].find({"_id": {"$gt": last["id"]}}).sort("_id", 1).limit(BATCH)
        docs = [doc async for doc in cursor]
        last["id"] = docs[-1]["_id"] if docs else ""
        return docs

    return [
        await timed("find_one by _id", 200, find_one, pids),
        await timed("conditional update (find + update_one)", 200, conditional_update, pids),
        await timed("journal insert_many of 100", 20, journal_insert, pids),
        await timed("history: newest 20 of one account", 100, history, pids),
        await timed("accounts page of 1000 by _id", 20, page, pids),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, action="append", default=[])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--db", default="probe")
    args = parser.parse_args()
    client: AsyncMongoClient[MongoDoc] = AsyncMongoClient(args.url)
    try:
        await client.drop_database(args.db)
        db = client[args.db]
        started = time.perf_counter()
        await seed(db, args.accounts, args.events)
        seeded_s = time.perf_counter() - started
        rows = await probe(db, args.accounts, {str(pid): pid for pid in args.pid})
        print(
            json.dumps(
                {
                    "accounts": args.accounts,
                    "events": args.events,
                    "seed_s": round(seeded_s, 1),
                    "ops": rows,
                },
                indent=1,
            )
        )
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
