"""Regional slices on real servers: the broker's grants over MongoDB, and two regional
stacks (two Redis, two gateways, two ledgers, two queues, one MongoDB) with a client
that alternates between them (docs/multi-region.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.gateway.usecases.slices import SPENT_OUT_KEPT_S
from shared.accounting.accounts import AccountStore
from shared.accounting.regions import Broker, book_of
from shared.accounting.slices import GrantPolicy
from shared.stores import MongoDoc
from tests.stack import PARIS, PrivateStore, ServiceStack, StackFactory, wait_for


@pytest.fixture
async def db(mongo_url: str) -> AsyncIterator[AsyncDatabase[MongoDoc]]:
    client: AsyncMongoClient[MongoDoc] = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"regions_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def test_concurrent_grants_never_take_more_than_the_pool(
    db: AsyncDatabase[MongoDoc],
) -> None:
    await AccountStore(db).create("acme", 100)
    brokers = [Broker(db, region, GrantPolicy()) for region in ("eu", "us", "ap")]

    grants: dict[tuple[str, int], int] = {}

    async def drain(broker: Broker) -> None:
        """One gateway of the broker's region asking until the pool is empty; two of a
        region may be answered the same grant (it reaches the book once)."""
        while True:
            last = await broker.last_grant("acme")
            granted = await broker.grant("acme", last.number + 1, 7, urgent=True)
            if granted is None:
                continue  # the other gateway of the region asked further meanwhile
            if not granted.tokens:
                return
            assert grants.setdefault((broker.region, granted.number), granted.tokens) == (
                granted.tokens
            )

    await asyncio.gather(*(drain(b) for b in brokers for _ in range(2)))
    assert sum(grants.values()) == 100
    pool = await db["accounts"].find_one({"_id": "acme"})
    assert pool is not None
    assert pool["balance"] == 0
    assert {r: g["n"] for r, g in pool["grants"].items()} == {
        region: max(n for r, n in grants if r == region) for region, _ in grants
    }


async def test_scarce_tokens_are_shared_among_the_regions_asking(
    db: AsyncDatabase[MongoDoc],
) -> None:
    """A region granted tokens a moment ago is still asking: the next region gets a
    fair share of what is left, not all of it; once the first has gone quiet, all."""
    await AccountStore(db).create("acme", 30)
    eu, us, ap = (Broker(db, region, GrantPolicy()) for region in ("eu", "us", "ap"))
    first = await eu.grant("acme", 1, 10, urgent=True)
    assert first is not None
    assert first.tokens == 10
    shared = await us.grant("acme", 1, 20, urgent=True)
    assert shared is not None
    assert shared.tokens == 10  # 20 left, two regions asking
    quiet = datetime.now(UTC) - timedelta(seconds=3)  # both grants older than two seconds
    await db["accounts"].update_one(
        {"_id": "acme"}, {"$set": {f"grants.{r}.at": quiet for r in ("eu", "us")}}
    )
    alone = await ap.grant("acme", 1, 20, urgent=True)
    assert alone is not None
    assert alone.tokens == 10


async def test_a_grant_asked_again_is_the_same_grant(db: AsyncDatabase[MongoDoc]) -> None:
    await AccountStore(db).create("acme", 10)
    broker = Broker(db, "eu", GrantPolicy())
    first = await broker.grant("acme", 1, 4, urgent=True)
    again = await broker.grant("acme", 1, 4, urgent=True)
    assert first == again
    assert first is not None
    assert first.tokens == 4
    assert await broker.grant("acme", 3, 4, urgent=True) is None  # not the next number
    assert await broker.grant("acme", 2, 4, urgent=True) is not None
    assert (await broker.elsewhere("acme")).tokens == 2
    standby = await broker.grant("acme", 3, 4, urgent=False)
    assert standby is not None
    assert standby.tokens == 0
    assert (await broker.last_grant("acme")).number == 2  # a grant of nothing takes no number
    pool = await db["accounts"].find_one({"_id": "acme"})
    assert pool is not None
    assert pool["balance"] == 2  # a standby ask takes none of the last tokens


async def spend(
    http: aiohttp.ClientSession, gateway: str, headers: dict[str, str]
) -> tuple[int, str]:
    async with http.get(f"{gateway}/memes", params=PARIS, headers=headers) as response:
        body = await response.json()
        return response.status, body.get("error", {}).get("code", "")


async def spend_until_refused(
    http: aiohttp.ClientSession, gateway: str, headers: dict[str, str]
) -> tuple[int, Counter[tuple[int, str]]]:
    """Spend at `gateway` until a 402 (a minute at most), trying a 503 again half a
    second later: the memes served, and every (status, code) answered."""
    answers: Counter[tuple[int, str]] = Counter()
    served, deadline = 0, asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        status, code = await spend(http, gateway, headers)
        answers[(status, code)] += 1
        if status == 402:
            break
        served += status == 200
        if status == 503:
            await asyncio.sleep(0.5)
    return served, answers


async def test_a_client_alternating_regions_never_overspends(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    db = f"maas_regions_{uuid.uuid4().hex[:8]}"
    eu, us = await asyncio.gather(
        make_stack(region="eu", mongo_db=db), make_stack(region="us", mongo_db=db)
    )
    funded = 40
    headers = await eu.create_account(http, "traveller", funded)
    answers: Counter[tuple[str, int, str]] = Counter()
    served, refused = 0, set[str]()
    for _ in range(3 * funded):
        for name, stack in (("eu", eu), ("us", us)):
            status, code = await spend(http, stack.gateway, headers)
            answers[(name, status, code)] += 1
            served += status == 200
            if status == 402:
                refused.add(name)
        if refused == {"eu", "us"}:
            break
    assert 0 < served <= funded, answers
    assert {status for _, status, _ in answers} <= {200, 402, 503}, answers

    async def slices() -> list[tuple[int, int]]:
        """Each region's live slice and its book's balance in MongoDB."""
        found = []
        for stack in (eu, us):
            book = book_of("traveller", stack.settings.region)
            live = await stack.redis_account(book)
            doc = await stack.mongo_account(book)
            found.append((int(live.get("balance", 0)), int(doc["balance"]) if doc else 0))
        return found

    async def settled() -> bool:
        pool = await eu.mongo_account("traveller")
        regions = await slices()
        return (
            pool is not None
            and all(live == book for live, book in regions)
            and (pool["balance"] + sum(book for _, book in regions) == funded - served)
        )

    await wait_for(settled, 30, "MongoDB to hold what was not served, in pool and books")
    for stack in (eu, us):  # each region compares its own book, and only that
        exit_code, report = await stack.maas("reconcile", "--json")
        assert exit_code == 0, report
        assert orjson.loads(report.splitlines()[-1])["statuses"] == {"ok": 1}, report
    async with http.get(f"{us.gateway}/v1/account", headers=headers) as response:
        own = await response.json()
    assert own["tokens"] == funded - served
    assert own["usage"]["tokens_spent"] == served
    async with http.get(f"{eu.gateway}/v1/accounts/traveller", headers=eu.admin) as response:
        view = await response.json()
    assert set(view["regions"]) == {"eu", "us"}
    assert view["ledger"]["balance"] + sum(view["regions"].values()) == view["tokens"]

    # Billing's retry of a credit sent to the other region is the same credit.
    answers_by_region = []
    for stack, amount in ((eu, 10), (us, 10), (us, 11)):
        status, body = await stack.credit(http, "traveller", amount, "invoice-7")
        answers_by_region.append((status, body.get("event_id")))
    (eu_status, first), (us_status, again), (conflict, _) = answers_by_region
    assert (eu_status, us_status, conflict) == (202, 202, 409)
    assert first == again
    async with http.get(f"{us.gateway}/v1/account", headers=headers) as response:
        assert (await response.json())["tokens"] == funded - served + 10


async def test_a_client_that_moves_reaches_every_token_it_left_behind(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """Spent in one region, then in another: the first gives its idle slice back but
    for its standby, and the standby too once the second region waits for it, so every
    funded token is served and the last answer is 402. The charge that waits for the
    standby tells the first region at once and is served when it lands, within its wait
    (five seconds here, for a slow machine): no 503 on the way."""
    db = f"maas_regions_{uuid.uuid4().hex[:8]}"
    eu, us = await asyncio.gather(
        make_stack(region="eu", mongo_db=db, slice_idle_return_s=2, slice_wait_s=5),
        make_stack(region="us", mongo_db=db, slice_idle_return_s=2),
    )
    standby = GrantPolicy().standby
    headers = await eu.create_account(http, "mover", 40)
    # billing's credit in the US lands in the US slice
    assert (await us.credit(http, "mover", 30, "top-up"))[0] == 202
    funded = 70
    statuses = [(await spend(http, us.gateway, headers))[0] for _ in range(20)]
    assert statuses == [200] * 20

    async def pool_holds(tokens: int) -> bool:
        pool = await eu.mongo_account("mover")
        return pool is not None and pool["balance"] == tokens

    try:
        await wait_for(lambda: pool_holds(funded - 20 - standby), 30, "the idle slice to go back")
    except AssertionError as timeout:
        docs = await eu.mongo()["accounts"].find({}).to_list()
        live = await us.redis_account(book_of("mover", "us"))
        raise AssertionError(f"{timeout}: MongoDB {docs}, us live {live}") from None
    served, answers = await spend_until_refused(http, eu.gateway, headers)
    assert served == funded - 20, answers
    assert answers[(402, "insufficient_tokens")] == 1, answers
    assert answers[(503, "tokens_in_transit")] == 0, answers
    await wait_for(lambda: pool_holds(0), 30, "the pool to be empty")
    for stack in (eu, us):
        book = await stack.mongo_account(book_of("mover", stack.settings.region))
        assert book is not None
        assert book["balance"] == 0


async def test_a_region_that_loses_its_redis_closes_its_slice_as_spent(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """Redis lost while its debits are still on their way to the ledger: the book's next
    load starts empty, and its first event closes what the book holds as spent once
    those debits are in. The client loses the slice it had there, never more; no token
    is served twice (served + closed = funded), and the region's reconcile is clean."""
    eu = await make_stack(region="eu", mongo_db=f"maas_regions_{uuid.uuid4().hex[:8]}")
    funded, book = 40, book_of("lost", "eu")
    headers = await eu.create_account(http, "lost", funded)
    statuses = [(await spend(http, eu.gateway, headers))[0] for _ in range(5)]
    await eu.stop("ledger")
    statuses += [(await spend(http, eu.gateway, headers))[0] for _ in range(3)]
    assert statuses == [200] * 8
    await wait_for(lambda: outbox_is_empty(eu), 15, "the relay to ship the debits")
    await asyncio.sleep(0.5)  # a refill under way lands in the slice
    slice_lost = int((await eu.redis_account(book))["balance"])
    assert slice_lost > 0
    await eu.flush_redis()
    # Billing's credit after the loss loads the book again, its three debits not yet
    # applied (the ledger is down): the credit lands in the new slice.
    assert (await eu.credit(http, "lost", 10, "after-the-loss"))[0] == 202
    funded += 10
    await eu.start("ledger")

    served_after, answers = await spend_until_refused(http, eu.gateway, headers)
    served = 8 + served_after
    assert served <= funded, answers
    assert served + slice_lost == funded, answers
    journal = eu.mongo()["ledger"]

    async def closed() -> bool:
        return await journal.count_documents({"account": book, "type": "close"}) == 1

    await wait_for(closed, 30, "the ledger to apply the close")
    close = await journal.find_one({"account": book, "type": "close"})
    assert close is not None
    assert (close["epoch"], close["seq"], close["amount"]) == (2, 1, slice_lost)

    async def settled() -> bool:
        pool, doc = await eu.mongo_account("lost"), await eu.mongo_account(book)
        live = await eu.redis_account(book)
        return (
            pool is not None and doc is not None
            and (pool["balance"], doc["balance"], int(live["balance"])) == (0, 0, 0)
        )  # fmt: skip

    await wait_for(settled, 30, "the pool and the book to be empty")
    exit_code, report = await eu.maas("reconcile", "--json")
    assert exit_code == 0, report


async def outbox_is_empty(stack: ServiceStack) -> bool:
    return await stack.redis_outbox_entries() == 0


async def test_a_credit_where_the_account_is_not_spent_goes_on_to_the_pool(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """Billing credits in one region, the client spends in another: the credit goes on
    to the pool at once (not after the slice's idle minute), and the client's region
    draws on it."""
    db = f"maas_regions_{uuid.uuid4().hex[:8]}"
    eu, us = await asyncio.gather(
        make_stack(region="eu", mongo_db=db), make_stack(region="us", mongo_db=db)
    )
    standby = GrantPolicy().standby
    headers = await eu.create_account(http, "abroad", 10)
    spent = [(await spend(http, us.gateway, headers))[0] for _ in range(11)]
    assert spent == [200] * 10 + [402]
    status, body = await eu.credit(http, "abroad", 20, "renewal")
    assert (status, body["tokens"]) == (202, 20)

    async def in_the_pool() -> bool:
        pool = await eu.mongo_account("abroad")
        return pool is not None and pool["balance"] == 20 - standby

    await wait_for(in_the_pool, 15, "the credit to reach the pool")
    await asyncio.sleep(SPENT_OUT_KEPT_S)  # the US answered its last 402 from memory
    spent = [(await spend(http, us.gateway, headers))[0] for _ in range(20 - standby)]
    assert spent == [200] * (20 - standby)


async def test_an_operator_closes_a_region_lost_for_good_and_its_tokens_come_back(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """`maas regions close`: what the dead region's books hold goes back to the pools,
    once (run again, it moves nothing), and the other region spends it."""
    db = f"maas_regions_{uuid.uuid4().hex[:8]}"
    eu, us = await asyncio.gather(
        make_stack(region="eu", mongo_db=db), make_stack(region="us", mongo_db=db)
    )
    funded, book = 40, book_of("stranded", "eu")
    headers = await eu.create_account(http, "stranded", funded)
    assert [(await spend(http, eu.gateway, headers))[0] for _ in range(5)] == [200] * 5
    await eu.drained(book)
    await asyncio.gather(eu.stop("gateway"), eu.stop("ledger"))  # the region is gone
    stored = await eu.mongo_account(book)
    assert stored is not None
    assert stored["balance"] > 0

    exit_code, output = await us.maas("regions", "close", "--region", "eu", "--reason", "lost")
    assert exit_code == 0, output
    assert f"stranded: {stored['balance']} tokens back in the pool" in output
    exit_code, output = await us.maas("regions", "close", "--region", "eu", "--reason", "lost")
    assert (exit_code, output.strip().splitlines()[-1]) == (
        0, "region eu closed: 0 tokens of 0 accounts returned",
    )  # fmt: skip
    pool = await us.mongo_account("stranded")
    assert pool is not None
    assert pool["balance"] == funded - 5
    answers = [(await spend(http, us.gateway, headers))[0] for _ in range(funded - 4)]
    assert answers == [200] * (funded - 5) + [402]


async def test_a_gateway_that_starts_gives_back_the_slices_it_finds_unused(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """A deploy restarts the gateway before a slice went idle: the new process finds the
    book in its region's Redis and gives back what stays unused, but for the standby."""
    eu = await make_stack(
        region="eu", mongo_db=f"maas_regions_{uuid.uuid4().hex[:8]}", slice_idle_return_s=5
    )
    funded, standby = 40, GrantPolicy().standby
    headers = await eu.create_account(http, "parked", funded)
    assert [(await spend(http, eu.gateway, headers))[0] for _ in range(3)] == [200] * 3
    # billing's credit lands in the region's slice
    assert (await eu.credit(http, "parked", 20, "top-up"))[0] == 202
    funded += 20
    await eu.stop("gateway")
    slice_left = int((await eu.redis_account(book_of("parked", "eu")))["balance"])
    assert slice_left > standby, "a slice with more than its standby to give back"
    await eu.start("gateway")

    async def back_in_the_pool() -> bool:
        pool = await eu.mongo_account("parked")
        return pool is not None and pool["balance"] == funded - 3 - standby

    await wait_for(back_in_the_pool, 30, "the unused slice to go back to the pool")
    live = await eu.redis_account(book_of("parked", "eu"))
    assert int(live["balance"]) == standby


async def test_a_grant_its_gateway_never_credited_is_credited_by_the_next_refill(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    """A gateway that dies between the pool's update and the book's credit: the tokens
    left the pool, and the region's next refill credits them before it asks again."""
    eu = await make_stack(region="eu", mongo_db=f"maas_regions_{uuid.uuid4().hex[:8]}")
    headers = await eu.create_account(http, "crash", 10)
    taken = await Broker(eu.mongo(), "eu", GrantPolicy()).grant("crash", 1, 4, urgent=True)
    assert taken is not None
    assert taken.tokens == 4
    statuses = [(await spend(http, eu.gateway, headers))[0] for _ in range(11)]
    assert statuses == [200] * 10 + [402]


async def test_a_region_cut_off_from_mongodb_spends_its_slice_then_answers_503(
    make_stack: StackFactory, http: aiohttp.ClientSession, private_store: PrivateStore
) -> None:
    """The store out of reach (a partition between the region and the home region): the
    region serves from the slice it holds, never more, then answers 503 (not 402, not
    500); once the store is back the account's tokens are served again, exactly."""
    eu = await make_stack(region="eu", mongo_url=private_store.url)
    funded = 1000
    headers = await eu.create_account(http, "cut", funded)
    assert [(await spend(http, eu.gateway, headers))[0] for _ in range(30)] == [200] * 30
    await asyncio.to_thread(private_store.stop, private_store.front)
    await asyncio.sleep(0.5)  # a refill the last charges started lands now, or never
    held = int((await eu.redis_account(book_of("cut", "eu")))["balance"])
    cut_off: Counter[tuple[int, str]] = Counter()
    for _ in range(held + 3):
        status, code = await spend(http, eu.gateway, headers)
        cut_off[(status, code)] += 1
    await asyncio.to_thread(private_store.start, private_store.front)
    assert cut_off[(200, "")] == held, cut_off
    assert cut_off[(503, "tokens_in_transit")] == 3, cut_off
    served = 30 + held
    status, _ = await spend(http, eu.gateway, headers)
    assert status == 200
    served += 1

    async def exact() -> bool:
        pool = await eu.mongo_account("cut")
        book = await eu.mongo_account(book_of("cut", "eu"))
        live = await eu.redis_account(book_of("cut", "eu"))
        return bool(pool and book) and (
            str(book["balance"]) == live["balance"]  # type: ignore[index]
            and pool["balance"] + book["balance"] == funded - served  # type: ignore[index]
        )

    await wait_for(exact, 30, "the books to hold what was not served")
