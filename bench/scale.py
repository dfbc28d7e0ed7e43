"""The scale scenario: the same figures with a small store and with a large one.

Small: 1,000 accounts and 10,000 journal entries; large: 100,000 accounts and 1,000,000
entries, seeded in bulk through the store's protocol (not the API). For each size: memes/s at
saturation over the active accounts, first-charge (hydration) latency, ledger apply rate,
drain and lag, the `maas ledger history` query, `maas reconcile`, and the store's CPU per meme.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pymongo.asynchronous.database import AsyncDatabase

from bench import accounts, metrics, procstat
from bench.load import Wrk, meme_paths, write_requests
from bench.stack import BenchStack
from services.ledger.adapters.mongo import LedgerStore, journal_entry
from shared.accounting.accounts import new_account
from shared.accounting.events import Event
from shared.settings import to_environment
from shared.stores import MongoDoc, mongo_client

ENTRIES_PER_ACCOUNT = 10
BATCH = 1000
STREAMS = 4
PROBES = 100
CONNECTIONS = 64
STORE = ("ferretdb", "postgres")
MAAS = Path(sys.executable).parent / "maas"


@dataclass(frozen=True)
class Size:
    name: str
    accounts: int
    active: int


SIZES = (Size("small", 1_000, 1_000), Size("large", 100_000, 10_000))


def account_id(n: int) -> str:
    return f"scale-{n:06d}"


def seeded_account(n: int) -> MongoDoc:
    """An account with ENTRIES_PER_ACCOUNT events applied in epoch 1."""
    return new_account(account_id(n), accounts.BALANCE) | {
        "epoch": 1,
        "seq": ENTRIES_PER_ACCOUNT,
        "hydrations": 1,
    }


def seeded_entries(n: int) -> list[MongoDoc]:
    account = account_id(n)
    return [
        journal_entry(
            Event(
                id=uuid.uuid4().hex,
                type="credit",
                account=account,
                amount=1,
                epoch=1,
                seq=seq,
                reason="purchase",
                request_id=f"seed-{account}-{seq}",
                at="2026-11-01T00:00:00.000Z",
            ),
            "seed",
        )
        for seq in range(1, ENTRIES_PER_ACCOUNT + 1)
    ]


async def seed_store(db: AsyncDatabase[MongoDoc], start: int, stop: int) -> None:
    """Accounts [start, stop) and their journals, in batches over a few parallel streams."""
    gate = asyncio.Semaphore(STREAMS)

    async def batch(first: int) -> None:
        numbers = range(first, min(first + BATCH, stop))
        async with gate:
            await db["accounts"].insert_many([seeded_account(n) for n in numbers], ordered=False)
            entries = [e for n in numbers for e in seeded_entries(n)]
            for i in range(0, len(entries), BATCH):
                await db["ledger"].insert_many(entries[i : i + BATCH], ordered=False)

    await asyncio.gather(*(batch(first) for first in range(start, stop, BATCH)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Scale:
    def __init__(self, stack: BenchStack, load_s: int, drain_timeout_s: int) -> None:
        self.stack = stack
        self.settings = stack.settings
        self.load_s = load_s
        self.drain_timeout_s = drain_timeout_s
        self.rng = random.Random(20261129)
        self.work = stack.run_dir / "scale"
        self.work.mkdir(parents=True, exist_ok=True)
        self.hydrated: set[int] = set()
        self.seeded = 0

    def token(self, n: int) -> str:
        return accounts.tokens(self.settings, [account_id(n)], [])[0]

    def store_cpu_s(self) -> float:
        pids = self.stack.pids()
        snapshot = procstat.snapshot({name: pids[name] for name in STORE})
        return sum(s.cpu_s for samples in snapshot.values() for s in samples.values())

    async def run(self) -> list[dict[str, Any]]:
        results = []
        for size in SIZES:
            started = time.monotonic()
            client = mongo_client(self.settings)
            try:
                await seed_store(client[self.settings.mongo_db], self.seeded, size.accounts)
            finally:
                await client.close()
            self.seeded = size.accounts
            seed_s = time.monotonic() - started
            print(f"[scale] {size.name}: seeded in {seed_s:.0f} s", file=sys.stderr, flush=True)
            results.append(
                {
                    "size": size.name,
                    "accounts": size.accounts,
                    "journal_entries": size.accounts * ENTRIES_PER_ACCOUNT,
                    "active_accounts": size.active,
                    "seed_s": round(seed_s, 1),
                    **await self.hydration(size),
                    **await self.saturation(size),
                    **await self.history(size),
                    **self.reconcile(),
                }
            )
        return results

    async def hydration(self, size: Size) -> dict[str, Any]:
        """First meme of never-hydrated accounts (loads Redis from the store), then a second."""
        fresh = [n for n in range(size.active, size.accounts) if n not in self.hydrated]
        probes = self.rng.sample(fresh or list(range(size.accounts)), PROBES)
        first: list[float] = []
        warm: list[float] = []
        url = self.stack.url("gateway") + meme_paths(self.rng, 1)[0]
        async with aiohttp.ClientSession() as http:
            for n in probes:
                headers = {"Authorization": f"Bearer {self.token(n)}"}
                for times in (first, warm):
                    started = time.perf_counter()
                    async with http.get(url, headers=headers) as r:
                        assert r.status == 200, await r.text()
                    times.append(1000 * (time.perf_counter() - started))
        self.hydrated.update(probes)
        return {
            "first_charge_ms_p50": round(statistics.median(first), 2),
            "warm_charge_ms_p50": round(statistics.median(warm), 2),
            "hydration_ms_p50": round(statistics.median(first) - statistics.median(warm), 2),
        }

    async def saturation(self, size: Size) -> dict[str, Any]:
        """Text memes at saturation round-robin over the active accounts, then the drain."""
        active = list(range(size.active))
        await accounts.hydrate(
            self.settings, [account_id(n) for n in active if n not in self.hydrated]
        )
        self.hydrated.update(active)
        tokens = [self.token(n) for n in active]
        paths = meme_paths(self.rng, max(2 * size.active, 5000))
        requests = write_requests(
            self.work / f"{size.name}.txt",
            [(p, tokens[i % len(tokens)]) for i, p in enumerate(paths)],
        )
        auditor = accounts.Auditor(self.settings, [account_id(n) for n in active])
        try:
            # From settled books: the hydration probes (on active accounts when every
            # account is active) may still be on their way to MongoDB.
            _, before = await auditor.wait_drained(self.drain_timeout_s)
            ledger0 = metrics.scrape(self.stack.url("ledger"))
            cpu0 = self.store_cpu_s()
            result = await asyncio.to_thread(
                Wrk(self.stack.url("gateway"), requests, self.load_s, CONNECTIONS, grace_s=2)
                .start()
                .wait
            )
            drain_s, after = await auditor.wait_drained(self.drain_timeout_s)
            store_cpu_s = self.store_cpu_s() - cpu0
        finally:
            await auditor.close()
        ledger1 = metrics.scrape(self.stack.url("ledger"))
        applied = metrics.delta(ledger1, ledger0, "maas_ledger_events_applied_total")
        return {
            "memes_per_s": round(result.rps, 1),
            "memes": result.ok,
            "errors": result.errors(),
            "drain_s": round(drain_s, 2),
            "drained": after.drained,
            "apply_rate_eps": round(applied / (result.seconds + drain_s), 1),
            "ledger_lag_p99_s_le": metrics.quantile(
                ledger1, ledger0, "maas_ledger_lag_seconds", 0.99
            ),
            "store_cpu_us_per_meme": round(1e6 * store_cpu_s / result.ok, 1) if result.ok else None,
            "charged_by_200": result.charged,
            "delta_redis": before.redis_balance - after.redis_balance,
            "delta_mongo": before.mongo_balance - after.mongo_balance,
            "exact": after.drained
            and result.charged
            == before.redis_balance - after.redis_balance
            == before.mongo_balance - after.mongo_balance,
        }

    async def history(self, size: Size) -> dict[str, Any]:
        """The query `maas ledger history` runs, on random accounts; then the command itself."""
        client = mongo_client(self.settings)
        times = []
        try:
            ledger = LedgerStore(client[self.settings.mongo_db])
            for n in self.rng.sample(range(size.accounts), PROBES):
                started = time.perf_counter()
                assert await ledger.history(account_id(n), 20)
                times.append(1000 * (time.perf_counter() - started))
        finally:
            await client.close()
        command = self.maas("ledger", "history", "--account", account_id(size.accounts - 1))
        return {
            "history_ms_p50": round(statistics.median(times), 2),
            "history_ms_p99": round(percentile(times, 0.99), 2),
            "history_command_s": command,
        }

    def reconcile(self) -> dict[str, Any]:
        return {"reconcile_command_s": self.maas("reconcile", "--json")}

    def maas(self, *args: str) -> float:
        """Wall time of one `maas` command against the bench's stack."""
        started = time.monotonic()
        subprocess.run(  # noqa: S603 - our own console script
            [str(MAAS), *args],
            env={**os.environ, **to_environment(self.stack.values)},
            check=False,
            capture_output=True,
        )
        return round(time.monotonic() - started, 2)


def ratios(small: dict[str, Any], large: dict[str, Any]) -> dict[str, float | None]:
    """Large over small for each per-operation figure (memes/s and apply rate: small over large)."""

    def ratio(key: str, inverse: bool = False) -> float | None:
        a, b = small.get(key), large.get(key)
        if not a or not b:
            return None
        return round(float(a / b if inverse else b / a), 2)

    return {
        "memes_per_s": ratio("memes_per_s", inverse=True),
        "first_charge_ms_p50": ratio("first_charge_ms_p50"),
        "apply_rate_eps": ratio("apply_rate_eps", inverse=True),
        "history_ms_p50": ratio("history_ms_p50"),
        "store_cpu_us_per_meme": ratio("store_cpu_us_per_meme"),
    }


async def run_scale(load_s: int, drain_timeout_s: int, workers: int) -> dict[str, Any]:
    stack = BenchStack(workers=workers)
    try:
        await stack.start()
        sizes = await Scale(stack, load_s, drain_timeout_s).run()
    finally:
        stack.stop()
    stack.remove()
    return {"sizes": sizes, "large_over_small": ratios(*sizes)}
