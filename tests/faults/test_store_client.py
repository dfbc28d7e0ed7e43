"""A store that answers nothing: readiness probes never break the client, and a ledger
whose apply hangs exits so a fresh one takes over.

An async pymongo call cancelled from outside while its server selection gives up a wait
can keep the client's topology lock for good: every later MongoDB call of the process
hangs. A ledger did exactly that in a chaos run (a store restart, probes timing out),
holding its messages for good. Readiness leaves a slow probe to end by itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
import pytest

from services.ledger.consumer import EXIT_STUCK
from shared.settings import Settings
from shared.stores import mongo_client
from shared.web import Readiness
from tests.stack import PARIS, PrivateStore, StackFactory

WRITERS = 30
PROBERS = 20
SILENT_S = 8.0
T = TypeVar("T")


@pytest.mark.slow
async def test_probes_cut_short_during_a_silent_store_leave_the_client_working(
    private_store: PrivateStore,
) -> None:
    front = private_store.running[private_store.front].process.pid
    stuck = await asyncio.wait_for(apart(silence(private_store.url, front)), timeout=90)
    assert stuck == 0, f"{stuck} store calls never returned: the client is broken"


async def silence(url: str, front: int) -> int:
    """Hammer the store and probe it while it answers nothing, then count the calls
    that never return once it answers again (the last one a fresh write)."""
    mongo = mongo_client(Settings(mongo_url=url))
    db = mongo["maas_client"]
    await db.counts.insert_one({"_id": "n", "n": 0})
    stop = asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await db.counts.update_one({"_id": "n"}, {"$inc": {"n": 1}})

    async def probe(readiness: Readiness) -> None:
        while not stop.is_set():
            await readiness.check()

    # Server selection waits in steps of 0.5 s: probes given up near those steps are
    # the ones that broke the client.
    readinesses = [
        Readiness({"mongo": lambda: mongo.admin.command("ping")}, within_s=0.5 + d)
        for d in (random.uniform(-0.003, 0.003) for _ in range(PROBERS))
    ]
    os.kill(front, signal.SIGSTOP)  # the store accepts connections and answers nothing
    try:
        load = [asyncio.create_task(write()) for _ in range(WRITERS)]
        load += [asyncio.create_task(probe(r)) for r in readinesses]
        await asyncio.sleep(SILENT_S)
    finally:
        os.kill(front, signal.SIGCONT)
    stop.set()
    _, stuck = await asyncio.wait(load, timeout=15)
    if stuck:
        return len(stuck)
    async with asyncio.timeout(10):
        await db.counts.update_one({"_id": "n"}, {"$inc": {"n": 1}})
        await mongo.close()
    return 0


def apart(work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """`work` on an event loop in a thread of its own: a broken client never lets its
    loop close (its lock's waiters ignore cancellation), and must not hang the tests."""
    answer: concurrent.futures.Future[T] = concurrent.futures.Future()

    async def main() -> None:
        try:
            answer.set_result(await work)
        except BaseException as error:  # handed to the test
            answer.set_exception(error)

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
    return asyncio.wrap_future(answer)


@pytest.mark.slow
async def test_a_ledger_whose_apply_hangs_exits_and_a_fresh_one_applies_everything(
    private_store: PrivateStore, make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(mongo_url=private_store.url, ledger_stuck_after_s=4)
    headers = await stack.create_account(http, "frozen", 100)

    async def memes(count: int) -> Counter[int]:
        statuses: Counter[int] = Counter()
        for _ in range(count):
            async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
                statuses[r.status] += 1
        return statuses

    assert await memes(10) == {200: 10}
    await stack.drained("frozen")
    ledger = stack.processes["ledger"]
    front = private_store.running[private_store.front].process.pid
    os.kill(front, signal.SIGSTOP)
    try:
        assert await memes(10) == {200: 10}, "charges need Redis only"
        code = await asyncio.to_thread(ledger.process.wait, 60)
    finally:
        os.kill(front, signal.SIGCONT)
    assert code == EXIT_STUCK
    assert "an apply is stuck; exiting" in ledger.log.read_text()
    stack.processes.pop("ledger")
    await stack.start("ledger")
    await stack.drained("frozen", timeout_s=60)
    stored = await stack.mongo_account("frozen")
    assert stored is not None
    assert (stored["balance"], stored["seq"]) == (80, 20)
