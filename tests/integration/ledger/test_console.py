"""The operators' console on a real ledger: sign-in, CSRF, every page and action."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from services.ledger.console.gate import COOKIE
from services.ledger.pipeline import Samples
from shared.accounting.events import Batch, Event
from shared.keys import Keys
from shared.stores import mongo_client, redis_client
from tests.console import ConsoleClient, account_with_memes, indexed_dead_letters, ledger_url
from tests.stack import ServiceStack, debit_event, wait_for

POISON = '<script>alert("dead letter")</script>'
HOSTILE_REASON = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
async def stack(
    servers_dir: Path, sqs_endpoint: str, mongo_url: str, shared_meme: str
) -> AsyncIterator[ServiceStack]:
    stack = ServiceStack(
        servers_dir / "stacks",
        sqs_endpoint,
        mongo_url,
        {"max_receive_count": 2, "pipeline_sample_interval_s": 1, "reconcile_interval_s": 0},
        shared_meme,
    )
    await stack.start()
    yield stack
    await stack.close()


@pytest.fixture
async def operator(stack: ServiceStack) -> AsyncIterator[ConsoleClient]:
    async with ConsoleClient(ledger_url(stack)) as client:
        response = await client.sign_in(stack.token("ops-anna", ("admin",)))
        assert response.status == 303
        yield client


async def test_every_page_asks_for_an_admin_token_kept_in_a_strict_httponly_cookie(
    stack: ServiceStack,
) -> None:
    async with ConsoleClient(ledger_url(stack)) as anonymous:
        assert (await anonymous.get("/console"))[0] == 301
        for page in ("/console/", "/console/dead-letters", "/console/dead-letters/x",
                     "/console/books", "/console/books/x", "/console/pipeline"):  # fmt: skip
            async with anonymous.http.get(
                f"{anonymous.base}{page}", allow_redirects=False
            ) as response:
                assert response.status == 303, page
                assert response.headers["Location"] == "/console/signin"
        status, page = await anonymous.post("/console/dead-letters/all/purge", {"reason": "x"})
        assert status == 401
        assert "sign in" in page
        assert (await anonymous.get("/console/signin"))[0] == 200

        for token, status in (
            ("not-a-jwt", 401),
            (stack.token("ops-anna", ("admin",), ttl_s=-60), 401),
            (stack.token("customer"), 403),
        ):
            response = await anonymous.sign_in(token)
            assert response.status == status
            assert anonymous.session_cookie is None

        async with anonymous.http.post(
            f"{anonymous.base}/console/signin",
            data={"token": stack.token("ops-anna", ("admin",))},
            headers={"Origin": "https://elsewhere.example"},
            allow_redirects=False,
        ) as response:
            assert response.status == 403  # a sign-in posted from another site
        assert anonymous.session_cookie is None

        response = await anonymous.sign_in(stack.token("ops-anna", ("admin",)))
        assert response.status == 303
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/console/" in cookie
        async with anonymous.http.get(f"{anonymous.base}/console/dead-letters") as answer:
            assert answer.status == 200
            assert "ops-anna" in await answer.text()
            policy = answer.headers["Content-Security-Policy"]
            assert "default-src 'none'" in policy  # no script runs, whatever a page holds
            assert "script-src" not in policy

        csrf = await anonymous.csrf()
        assert (await anonymous.post("/console/signout", {}, csrf))[0] == 303
        assert anonymous.session_cookie is None
        assert (await anonymous.get("/console/dead-letters"))[0] == 303


async def test_the_session_is_a_server_side_id_bound_to_its_csrf_and_ended_by_sign_out(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    token = stack.token("ops-ben", ("admin",))
    async with (
        ConsoleClient(ledger_url(stack)) as first,
        ConsoleClient(ledger_url(stack)) as second,
    ):
        for browser in (first, second):
            assert (await browser.sign_in(token)).status == 303
        session_id = first.session_cookie.value
        assert token not in session_id, "the cookie must never carry the JWT"
        assert session_id != second.session_cookie.value
        async with http.get(
            f"{stack.gateway}/v1/account", headers={"Authorization": f"Bearer {session_id}"}
        ) as response:
            assert response.status == 401  # a stolen cookie is no API credential

        csrf_first, csrf_second = await first.csrf(), await second.csrf()
        assert csrf_first != csrf_second, "each session has its own CSRF token"
        form = {"reason": "cross-session"}
        assert (await first.post("/console/books/reconcile", form, csrf_second))[0] == 403

        assert (await first.post("/console/signout", {}, csrf_first))[0] == 303
        async with ConsoleClient(ledger_url(stack)) as replay:
            replay.http.cookie_jar.update_cookies({COOKIE: session_id})
            status, _ = await replay.get("/console/dead-letters")
            assert status == 303, "a signed-out session id opens nothing"
        assert (await second.get("/console/dead-letters"))[0] == 200  # other sessions live on


async def dead_poison_and_gap(stack: ServiceStack, account: str) -> tuple[str, str]:
    """A `<script>` poison message and a gap for `account` (seq 5 of an account at 0)."""
    keys = Keys(stack.settings.shards)
    shard = keys.shard_of(account)
    poison_group = next(g for g in range(stack.settings.shards) if g != shard)
    await stack.send_raw(POISON, f"s{poison_group}")
    hostile = Event(**{**debit_event(account, 5).to_dict(), "reason": HOSTILE_REASON})
    batch = Batch(shard, [hostile])
    await stack.send_raw(batch.encode(), batch.group_id)
    letters = await indexed_dead_letters(stack, 2)
    poison = next(letter["_id"] for letter in letters if letter["group_id"] != batch.group_id)
    gap = next(letter["_id"] for letter in letters if letter["group_id"] == batch.group_id)
    return poison, gap


async def index_ids(stack: ServiceStack) -> set[str]:
    client = mongo_client(stack.settings)
    try:
        letters = client[stack.settings.mongo_db]["dead_letters"]
        return {doc["_id"] async for doc in letters.find({"resolved_at": None}, {"_id": 1})}
    finally:
        await client.close()


async def test_dead_letters_are_shown_escaped_and_act_only_with_a_csrf_token(
    stack: ServiceStack, operator: ConsoleClient, http: aiohttp.ClientSession
) -> None:
    await stack.create_account(http, "console-gap", 10)
    poison, gap = await dead_poison_and_gap(stack, "console-gap")

    status, listing = await operator.get("/console/dead-letters")
    assert status == 200
    assert poison in listing
    assert gap in listing
    assert "gap for &#39;console-gap&#39;" in listing
    assert "<script" not in listing.lower()
    status, mine = await operator.get("/console/dead-letters?account=console-gap")
    assert status == 200
    assert gap in mine
    assert poison not in mine  # it names no account
    _, malformed = await operator.get("/console/dead-letters?reason=MALFORMED")
    assert poison in malformed
    assert gap not in malformed
    assert (await operator.get("/console/dead-letters?account=bad%20id"))[0] == 400
    _, account_page = await operator.get("/console/books/console-gap")
    assert f'href="/console/dead-letters/{gap}"' in account_page  # the letters holding it
    assert poison not in account_page

    status, shown = await operator.get(f"/console/dead-letters/{poison}")
    assert status == 200
    assert "&lt;script&gt;alert(&#34;dead letter&#34;)&lt;/script&gt;" in shown
    assert "<script" not in shown.lower()
    assert "malformed" in shown

    status, shown = await operator.get(f"/console/dead-letters/{gap}")
    assert status == 200
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown
    assert "<img" not in shown
    assert "waits for missing events" in shown
    assert "epoch 1 seq 1-4" in shown  # what is missing before the dead letter's seq 5
    assert "epoch 0 seq 0" in shown  # MongoDB has applied nothing yet

    csrf = await operator.csrf()
    for path in ("/console/dead-letters/no-such-id", "/console/dead-letters/no-such-id/redrive"):
        assert (await operator.get(path))[0] == 404
    assert (await operator.get(f"/console/dead-letters/{gap}/explode"))[0] == 404
    status, _ = await operator.post("/console/dead-letters/no-such-id/purge", {"reason": "x"}, csrf)
    assert status == 404

    before = await index_ids(stack)
    async with ConsoleClient(ledger_url(stack)) as other:
        await other.sign_in(stack.token("ops-ben", ("admin",)))
        someone_elses = await other.csrf()
    for forged in (None, "0" * 64, someone_elses):
        status, page = await operator.post(
            f"/console/dead-letters/{poison}/purge", {"reason": "forged"}, forged
        )
        assert status == 403, forged
        assert "CSRF" in page
    status, _ = await operator.post(f"/console/dead-letters/{poison}/purge", {"reason": " "}, csrf)
    assert status == 400
    assert await index_ids(stack) == before
    assert await stack.dead_letters() == 2

    status, confirm = await operator.get(f"/console/dead-letters/{poison}/purge")
    assert status == 200
    assert "deletes the token events for good" in confirm
    status, done = await operator.post(
        f"/console/dead-letters/{poison}/purge", {"reason": "hostile producer"}, csrf
    )
    assert status == 200
    assert f"purged <code>{poison}</code>" in done
    assert poison not in await index_ids(stack)

    await stack.send_batches([debit_event("console-gap", n) for n in range(1, 5)], per_message=4)

    async def missing_events_applied() -> bool:  # Redis never charged them: wait on MongoDB
        stored = await stack.mongo_account("console-gap")
        return stored is not None and stored["seq"] == 4

    await wait_for(missing_events_applied, 30, "seq 1-4 of console-gap to apply")
    status, confirm = await operator.get("/console/dead-letters/all/redrive")
    assert status == 200
    assert gap in confirm
    status, done = await operator.post(
        "/console/dead-letters/all/redrive", {"reason": "missing events arrived"}, csrf
    )
    assert status == 200
    assert f"redriven <code>{gap}</code>" in done
    stored = await stack.mongo_account("console-gap")
    assert stored is not None
    assert (stored["seq"], stored["balance"]) == (5, 5)

    status, listing = await operator.get("/console/dead-letters")
    assert "The dead-letter queue is empty." in listing
    for who_and_why in ("ops-anna", "hostile producer", "missing events arrived"):
        assert who_and_why in listing


async def test_books_list_drift_open_the_history_and_settle_on_the_record(
    stack: ServiceStack, operator: ConsoleClient, http: aiohttp.ClientSession
) -> None:
    await account_with_memes(stack, http, "books-drift", 40, 1)
    client = mongo_client(stack.settings)
    try:  # MongoDB loses 7 tokens behind the ledger's back: drift
        await client[stack.settings.mongo_db]["accounts"].update_one(
            {"_id": "books-drift"}, {"$inc": {"balance": -7}}
        )
    finally:
        await client.close()

    csrf = await operator.csrf("/console/books")
    assert (await operator.post("/console/books/reconcile", {}, None))[0] == 403
    assert (await operator.post("/console/books/reconcile", {}, csrf))[0] == 303
    status, books = await operator.get("/console/books")
    assert status == 200
    assert "by ops-anna" in books
    assert 'href="/console/books/books-drift"' in books
    assert '<span class="status drift">drift</span>' in books

    status, account = await operator.get("/console/books/books-drift")
    assert status == 200
    assert "meme:text" in account  # the history
    assert '<td class="num">-1</td>' in account  # a debit takes
    # The fleet's drift gauges are the periodic run's (off here): one account's page, or
    # an operator's reconcile, never rewrites them.
    async with http.get(f"{ledger_url(stack)}/metrics") as response:
        metrics = await response.text()
    assert "maas_reconcile_drift_tokens 0.0" in metrics
    assert "maas_reconcile_drifting_accounts 0.0" in metrics
    assert "Settle" in account
    assert (await operator.get("/console/books/nobody-here"))[0] == 404
    assert (await operator.get("/console/books/bad%20id!"))[0] == 404

    path = "/console/books/books-drift/settle"
    assert (await operator.post(path, {"reason": "x", "confirm": "yes"}, "f" * 64))[0] == 403
    assert (await operator.post(path, {"reason": "mongo edited by hand"}, csrf))[0] == 400
    status, settled = await operator.post(
        path, {"reason": "mongo edited by hand", "confirm": "yes"}, csrf
    )
    assert status == 200, settled
    assert "Balance 39 → 32" in settled
    live = await stack.redis_account("books-drift")
    assert live["balance"] == "32"
    _, account = await operator.get("/console/books/books-drift")
    assert "mongo edited by hand" in account

    async def reconciled_ok() -> bool:  # "pending" while an event is on its way (documented)
        _, page = await operator.get("/console/books/books-drift")
        return '<span class="status ok">ok</span>' in page

    await wait_for(reconciled_ok, 10, "the settled account to reconcile ok")


async def test_books_find_any_account_by_id_or_prefix_a_page_at_a_time(
    stack: ServiceStack, operator: ConsoleClient, http: aiohttp.ClientSession
) -> None:
    for account in ("find-a1", "find-a2", "find-b1"):
        await stack.create_account(http, account, 7)
    status, found = await operator.get("/console/books/search?q=find-a")
    assert status == 200
    assert 'href="/console/books/find-a1"' in found
    assert 'href="/console/books/find-a2"' in found
    assert "find-b1" not in found
    _, later = await operator.get("/console/books/search?q=find-a&after=find-a1")
    assert "find-a1" not in later
    assert 'href="/console/books/find-a2"' in later
    async with operator.http.get(
        f"{operator.base}/console/books/search?q=find-b1", allow_redirects=False
    ) as exact:
        assert exact.status == 303
        assert exact.headers["Location"] == "/console/books/find-b1"
    _, none = await operator.get("/console/books/search?q=nobody-by-that-name")
    assert 'id="none"' in none
    assert (await operator.get("/console/books/search?q=a%2Fb"))[0] == 400


async def test_an_account_page_pages_its_journal_backwards_and_lists_its_credits(
    stack: ServiceStack, operator: ConsoleClient, http: aiohttp.ClientSession
) -> None:
    await account_with_memes(stack, http, "paged-acct", 100, 55)
    async with http.post(
        f"{stack.gateway}/v1/accounts/paged-acct/credits",
        json={"amount": 5, "reason": "purchase"},
        headers={**stack.admin, "Idempotency-Key": "order-77"},
    ) as response:
        assert response.status == 202
    await stack.drained("paged-acct")
    status, newest = await operator.get("/console/books/paged-acct")
    assert status == 200
    assert "<code>order-77</code>" in newest  # the credit, by its idempotency key
    older = re.search(r'id="older" href="([^"]+)"', newest)
    assert older, "56 entries do not fit one page of 50"

    def seqs(page: str) -> set[int]:
        """The seqs of the history table's rows (all of epoch 1)."""
        table = page.split('id="history"')[1]
        return {
            int(n) for n in re.findall(r'<td class="num">1</td><td class="num">(\d+)</td>', table)
        }

    assert seqs(newest) == set(range(7, 57))  # the credit is seq 56, the newest
    _, oldest = await operator.get(older.group(1).replace("&amp;", "&"))
    assert seqs(oldest) == set(range(1, 7))
    assert 'id="older"' not in oldest


async def test_replicas_show_the_same_books_and_accept_each_others_csrf_tokens(
    stack: ServiceStack, operator: ConsoleClient
) -> None:
    second = await stack.start_replica("ledger", "ledger-console-2")
    csrf = await operator.csrf("/console/books")  # issued by the first replica
    status, _ = await operator.post("/console/books/reconcile", {}, csrf, base=second)
    assert status == 303
    _, here = await operator.get("/console/books")
    async with operator.http.get(f"{second}/console/books") as response:
        there = await response.text()
    assert here == there


async def test_pipeline_charts_the_last_hour_of_samples_kept_in_redis(
    stack: ServiceStack, operator: ConsoleClient, http: aiohttp.ClientSession
) -> None:
    await account_with_memes(stack, http, "pipeline-charts", 10, 3)

    async def sampled() -> bool:
        _, page = await operator.get("/console/pipeline")
        return page.count("no samples") == 0

    await wait_for(sampled, 30, "pipeline samples for every chart")
    status, page = await operator.get("/console/pipeline")
    assert status == 200
    assert '<meta http-equiv="refresh" content="1">' in page
    assert page.count("<svg") == 6 + stack.settings.shards
    assert "Outbox depth per shard" in page
    redis = redis_client(stack.settings)
    try:
        applied = await Samples(redis).since("applied", 0)
    finally:
        await redis.aclose()
    assert sum(s.values[0] for s in applied) >= 3
