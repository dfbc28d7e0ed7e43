"""Cost per store operation at a given size, to choose and check the local store.

    python -m bench.store_probe --url mongodb://127.0.0.1:PORT --pid PID \
        --accounts 100000 --events 1000000
    python -m bench.store_probe --compare ferretdb mongo-java-server \
        --sizes 1000 100000 --rounds 2

Seeds `accounts` and the journal (10 entries per account unless --events says otherwise)
in bulk, then times each access path the services use and reads the store processes' CPU
(utime+stime of the trees under --pid) around it. --compare starts each named local store
on a free port, seeds them all at each size, then probes them in turn, `rounds` times, so
their figures come from the same minutes of a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import BulkWriteError

from bench import procstat
from infra.local.stack import Running, free_port, start, stop_pid, store_servers
from services.ledger.adapters.mongo import LedgerStore, journal_id
from shared.stores import MongoDoc

BATCH = 1000
DUPLICATE_KEY = 11000
BUDGET_S = 30.0
MIN_RUNS = 3


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
    for first in range(0, accounts, BATCH):
        docs = [account_doc(i) for i in range(first, min(first + BATCH, accounts))]
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
    """Run `op` `count` times, or as many as fit in BUDGET_S (a store that scans is slow)."""
    before = procstat.snapshot(pids)
    started = time.perf_counter()
    done = 0
    while done < count and (done < MIN_RUNS or time.perf_counter() - started < BUDGET_S):
        await op(done)
        done += 1
    elapsed = time.perf_counter() - started
    cpu = procstat.usage(before, procstat.snapshot(pids), elapsed)
    store_cpu = sum(float(tree["cpu_s"]) for tree in cpu.values())
    return {
        "op": name,
        "runs": done,
        "ms_per_op": round(1000 * elapsed / done, 3),
        "store_cpu_us_per_op": round(1e6 * store_cpu / done, 1),
    }


async def probe(
    db: Any, accounts: int, pids: dict[str, int], next_seq: int = 10_000_000
) -> list[dict[str, Any]]:
    """Time each access path; new journal entries take positions from `next_seq` on."""
    rng = random.Random(7)
    pick = [f"acct-{rng.randrange(accounts):07d}" for _ in range(400)]
    seqs = iter(range(next_seq, next_seq + 1_000_000))

    async def find_one(i: int) -> object:
        return await db["accounts"].find_one({"_id": pick[i]})

    async def conditional_update(i: int) -> object:
        doc = await db["accounts"].find_one({"_id": pick[i]}, {"epoch": 1, "seq": 1})
        return await db["accounts"].update_one(
            {"_id": pick[i], "epoch": doc["epoch"], "seq": doc["seq"]},
            {"$inc": {"balance": -1}, "$set": {"seq": doc["seq"] + 1}},
        )

    async def journal_insert(i: int) -> object:
        """90 new entries and 10 the seed wrote already, as a redelivered batch brings."""
        docs = [journal_doc(pick[(i + k) % len(pick)], next(seqs)) for k in range(90)]
        docs += [journal_doc(pick[(i + k) % len(pick)], 1) for k in range(10)]
        try:
            return await db["ledger"].insert_many(docs, ordered=False)
        except BulkWriteError as error:
            codes = {e["code"] for e in error.details["writeErrors"]}
            if codes != {DUPLICATE_KEY}:
                raise
            return error.details["nInserted"]

    async def history(i: int) -> object:
        return await LedgerStore(db).history(pick[i], 20)

    last = {"id": ""}

    async def page(i: int) -> object:
        cursor = db["accounts"].find({"_id": {"$gt": last["id"]}}).sort("_id", 1).limit(BATCH)
        docs = [doc async for doc in cursor]
        last["id"] = docs[-1]["_id"] if docs else ""
        return docs

    async def upsert(i: int) -> object:
        return await db["claims"].find_one_and_update(
            {"_id": f"{pick[i]}/claim-{next(seqs)}"},
            {"$set": {"last_seen": i}, "$setOnInsert": {"account": pick[i], "first_seen": i}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )

    return [
        await timed("find_one by _id", 200, find_one, pids),
        await timed("conditional update (find + update_one)", 200, conditional_update, pids),
        await timed("journal insert_many of 100", 20, journal_insert, pids),
        await timed("history: newest 20 of one account", 100, history, pids),
        await timed("accounts page of 1000 by _id", 20, page, pids),
        await timed("findAndModify upsert (new _id)", 200, upsert, pids),
    ]


async def seeded(url: str, name: str, accounts: int, events: int) -> float:
    """Drop and seed database `name`; the seconds it took."""
    client: AsyncMongoClient[MongoDoc] = AsyncMongoClient(url)
    try:
        await client.drop_database(name)
        started = time.perf_counter()
        await seed(client[name], accounts, events)
        return round(time.perf_counter() - started, 1)
    finally:
        await client.close()


async def probed(
    url: str, name: str, accounts: int, pids: list[int], round_no: int = 1
) -> list[dict[str, Any]]:
    client: AsyncMongoClient[MongoDoc] = AsyncMongoClient(url)
    try:
        pid_of = {str(pid): pid for pid in pids}
        return await probe(client[name], accounts, pid_of, round_no * 10_000_000)
    finally:
        await client.close()


def start_store(store: str, data_dir: Path) -> tuple[str, list[Running]]:
    port = free_port()
    running = [start(server, data_dir) for server in store_servers(port, data_dir, store=store)]
    return f"mongodb://127.0.0.1:{port}", running


def compare(stores: list[str], sizes: list[int], rounds: int) -> list[dict[str, Any]]:
    """Start each store on a free port, measure them all, stop them."""
    base = Path(tempfile.mkdtemp(prefix="maas-store-probe-"))
    base.chmod(0o755)  # PostgreSQL runs as its own user and must reach its directory
    started: dict[str, tuple[str, list[Running]]] = {}
    try:
        for store in stores:
            started[store] = start_store(store, base / store)
        return asyncio.run(measure(started, sizes, rounds))
    finally:
        for _, running in started.values():
            for server in reversed(running):
                stop_pid(server.process.pid)
        shutil.rmtree(base, ignore_errors=True)


async def measure(
    started: dict[str, tuple[str, list[Running]]], sizes: list[int], rounds: int
) -> list[dict[str, Any]]:
    """Each store at each size, seeded side by side, then probed in turn `rounds` times."""
    results: list[dict[str, Any]] = []
    for accounts in sizes:
        name = f"probe_{accounts}"
        seed_s = {
            store: await seeded(url, name, accounts, 10 * accounts)
            for store, (url, _) in started.items()
        }
        for round_no in range(1, rounds + 1):
            for store, (url, running) in started.items():
                pids = [r.process.pid for r in running]
                ops = await probed(url, name, accounts, pids, round_no)
                results.append(
                    {
                        "store": store,
                        "accounts": accounts,
                        "events": 10 * accounts,
                        "round": round_no,
                        "seed_s": seed_s[store],
                        "ops": ops,
                    }
                )
                print(json.dumps(results[-1]), flush=True)
    return results


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per operation, one column per store, size and round."""
    columns = [f"{r['store']} {r['accounts']:,} r{r['round']}" for r in results]
    lines = [
        "| ms per op (store CPU µs per op) | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for i, op in enumerate(results[0]["ops"]):
        cells = [
            f"{r['ops'][i]['ms_per_op']} ({r['ops'][i]['store_cpu_us_per_op']:,})" for r in results
        ]
        lines.append(f"| {op['op']} | " + " | ".join(cells) + " |")
    lines.append("| seed, s | " + " | ".join(str(r["seed_s"]) for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url")
    parser.add_argument("--pid", type=int, action="append", default=[])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--db", default="probe")
    parser.add_argument("--compare", nargs="+", metavar="STORE", help="local stores to start")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 100_000])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.compare:
        print(table(compare(args.compare, args.sizes, args.rounds)))
        return
    if not args.url:
        parser.error("give --url (a running store) or --compare (stores to start)")
    seed_s = asyncio.run(seeded(args.url, args.db, args.accounts, args.events))
    rows = asyncio.run(probed(args.url, args.db, args.accounts, args.pid))
    print(
        json.dumps(
            {"accounts": args.accounts, "events": args.events, "seed_s": seed_s, "ops": rows},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
