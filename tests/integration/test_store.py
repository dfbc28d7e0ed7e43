"""The local store: every hot path is served by the `_id` index, and data outlives a restart.

PostgreSQL runs with sequential scans priced out (`enable_seqscan=off`), so the planner
takes an index whenever the statement FerretDB sends can use one, and `auto_explain`
writes every plan to the log. A statement the index cannot serve still shows a Seq Scan.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from infra.local.stack import local_store
from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.apply import AccountUpdate, Position
from shared.accounting.accounts import AccountStore, new_account
from shared.accounting.credits import CreditLog, FirstAnswer
from shared.stores import MongoDoc
from tests.stack import PrivateStore, debit_event

EXPLAINED = (
    "enable_seqscan=off",
    "session_preload_libraries=auto_explain",
    "auto_explain.log_min_duration=0",
    "jit=off",  # priced-out plans would be compiled
)
ACCOUNTS = 300
BEYOND_THE_POOL = 1000  # updates at once; FerretDB keeps 50 connections to PostgreSQL


@pytest.fixture(scope="module")
def explained(store_dir: Path) -> Iterator[PrivateStore]:
    """A store whose PostgreSQL logs the plan of every statement."""
    store = PrivateStore(store_dir, *EXPLAINED)
    store.start()
    yield store
    store.stop()


class Plans:
    """The plans logged since the last call, for the statements on one collection."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size

    def since(self, collection: str) -> list[str]:
        with self.log.open() as f:
            f.seek(self.offset)
            text = f.read()
        self.offset += len(text.encode())
        table = re.compile(rf'"{collection}_[0-9a-f]{{8}}"')
        return [plan for plan in text.split("duration:") if table.search(plan)]


def served_by_index(plans: list[str]) -> Counter[str]:
    """Plan nodes that matter: scans by kind, and any sort done outside the index."""
    assert plans, "no statement reached the collection"
    nodes: Counter[str] = Counter()
    for plan in plans:
        for node in ("Seq Scan", "Index Scan Backward", "Index Scan", "Sort", "Limit"):
            nodes[node] += plan.count(f"{node} ") + plan.count(f"{node}\n")
    return nodes


@pytest.mark.skipif(local_store() != "ferretdb", reason="reads PostgreSQL's query plans")
async def test_every_hot_path_is_answered_from_the_id_index(explained: PrivateStore) -> None:
    client = explained.client()
    db = client[f"plans_{uuid.uuid4().hex[:6]}"]
    accounts, ledger, credits = AccountStore(db), LedgerStore(db), CreditLog(db)
    ids = [f"acct-{n:04d}" for n in range(ACCOUNTS)]
    try:
        for account in ids:
            await accounts.create(account, 100)
        updates = []
        for account in ids[:20]:
            update = AccountUpdate(account, Position(0, 0), Position(0, 0))
            for seq in range(1, 6):
                update.add(debit_event(account, seq))
            updates.append(update)
        await ledger.write_journal(
            [e for u in updates for e in u.events],
            {e.id: "m" for u in updates for e in u.events},
            {},
        )
        plans = Plans(explained.log)

        assert (await accounts.get("acct-0007") or {})["balance"] == 100
        assert (await accounts.next_epoch("acct-0008")) is not None
        assert served_by_index(plans.since("accounts"))["Seq Scan"] == 0

        assert await ledger.apply(updates[:3]) == set()
        assert await ledger.apply(updates[:1]) == {updates[0].account}  # already moved
        assert served_by_index(plans.since("accounts"))["Seq Scan"] == 0

        history = await ledger.history("acct-0001", 3)
        assert [e["seq"] for e in history] == [5, 4, 3]
        nodes = served_by_index(plans.since("ledger"))
        assert nodes["Seq Scan"] == nodes["Sort"] == 0
        assert nodes["Index Scan Backward"] >= 1
        assert nodes["Limit"] >= 1

        page = [
            d["_id"]
            async for d in db["accounts"].find({"_id": {"$gt": ids[9]}}).sort("_id", 1).limit(5)
        ]
        assert page == ids[10:15]
        nodes = served_by_index(plans.since("accounts"))
        assert nodes["Seq Scan"] == nodes["Sort"] == 0
        assert nodes["Limit"] >= 1

        await credits.record("acct-0002", "key-1", FirstAnswer("fp", "ev", 5))
        assert (await credits.first_answer("acct-0002", "key-1") or {})["tokens"] == 5
        assert served_by_index(plans.since("credits"))["Seq Scan"] == 0

        await ledger.record_failure("message-1", "gap", 1, {})
        assert (await ledger.failure("message-1") or {})["last_reason"] == "gap"
        assert served_by_index(plans.since("dlq_reasons"))["Seq Scan"] == 0
    finally:
        await client.close()


async def test_history_holds_only_the_accounts_own_entries(explained: PrivateStore) -> None:
    """Account ids that share a prefix (`a`, `a-b`, `a0`, `a:b`) keep their entries apart."""
    client = explained.client()
    ledger = LedgerStore(client[f"prefix_{uuid.uuid4().hex[:6]}"])
    owners = ["a", "a-b", "a.b", "a0", "a:b", "a@b", "aa"]
    try:
        events = [debit_event(owner, seq) for owner in owners for seq in (1, 2)]
        await ledger.write_journal(events, {e.id: "m" for e in events}, {})
        await ledger.write_journal(events[:2], {e.id: "m" for e in events[:2]}, {})  # a retry
        for owner in owners:
            entries = await ledger.history(owner, 10)
            assert [(e["account"], e["seq"]) for e in entries] == [(owner, 2), (owner, 1)]
    finally:
        await client.close()


async def test_a_filter_on_another_field_sorted_by_id_is_answered(mongo_url: str) -> None:
    """The `_id` page pushdown must leave such queries to the handler, not fail them."""
    client: AsyncMongoClient[MongoDoc] = AsyncMongoClient(mongo_url)
    collection = client[f"sorted_{uuid.uuid4().hex[:6]}"]["reused_positions"]
    try:
        await collection.insert_many(
            [{"_id": "b", "adopted_at": None}, {"_id": "a", "adopted_at": None}, {"_id": "c"}]
        )
        found = [d["_id"] async for d in collection.find({"adopted_at": None}).sort("_id", 1)]
        assert found == ["a", "b", "c"]  # a missing field matches null, as on MongoDB
    finally:
        await client.close()


@pytest.mark.parametrize("killed", [False, True], ids=["stopped", "killed"])
async def test_the_store_keeps_its_data_across_a_restart(store_dir: Path, killed: bool) -> None:
    """Stopped, or killed with SIGKILL right after the write was acknowledged."""
    store = PrivateStore(store_dir)
    store.start()
    try:
        client = store.client()
        await AccountStore(client["restart"]).create("kept", 42)
        await client.close()
        if killed:
            store.kill()
        else:
            store.stop()
        store.start()
        client = store.client()
        stored = await AccountStore(client["restart"]).get("kept")
        await client.close()
        assert stored is not None
        assert stored["balance"] == 42
    finally:
        store.stop()


async def test_more_concurrent_updates_than_store_connections_all_finish(
    explained: PrivateStore,
) -> None:
    """An update reads its matches, then writes on another connection; side by side (the
    ledger sends one per account) they must not take the whole pool and wait on each other."""
    client = explained.client(connections=BEYOND_THE_POOL)
    db = client[f"pool_{uuid.uuid4().hex[:6]}"]
    ids = [f"acct-{n:04d}" for n in range(BEYOND_THE_POOL)]
    try:
        await db["accounts"].insert_many([new_account(a, 100) for a in ids])
        updates = []
        for account in ids:
            update = AccountUpdate(account, Position(0, 0), Position(0, 0))
            update.add(debit_event(account, 1))
            updates.append(update)
        moved_elsewhere = await asyncio.wait_for(LedgerStore(db).apply(updates), timeout=120)
        assert moved_elsewhere == set()
        balances = [d["balance"] async for d in db["accounts"].find({}, {"balance": 1})]
        assert balances == [99] * BEYOND_THE_POOL
    finally:
        await client.close()


async def test_concurrent_updates_of_one_document_are_atomic(mongo_url: str) -> None:
    """As on MongoDB: of concurrent updates conditional on one state, one applies and the
    others match nothing; concurrent increments all count. The ledger's position filter
    and the broker's `balance >= g` rest on it (the store's updates read, then write the
    document: unpatched, each wrote over the others and all reported success)."""
    client: AsyncMongoClient[MongoDoc] = AsyncMongoClient(mongo_url, maxPoolSize=64)
    collection = client[f"atomic_{uuid.uuid4().hex[:6]}"]["accounts"]
    racers = 16
    try:
        for trial in range(5):
            await collection.insert_one({"_id": f"a{trial}", "seq": 0, "balance": 0, "hits": 0})
            moved = await asyncio.gather(
                *(
                    collection.update_one(
                        {"_id": f"a{trial}", "seq": 0}, {"$set": {"seq": 1}, "$inc": {"balance": 1}}
                    )
                    for _ in range(racers)
                )
            )
            assert sum(result.modified_count for result in moved) == 1
            await asyncio.gather(
                *(
                    collection.update_one({"_id": f"a{trial}"}, {"$inc": {"hits": 1}})
                    for _ in range(racers)
                )
            )
            doc = await collection.find_one({"_id": f"a{trial}"})
            assert doc == {"_id": f"a{trial}", "seq": 1, "balance": 1, "hits": racers}
    finally:
        await client.close()
