"""The whole path for real: JWT -> Redis charge -> outbox -> SQS FIFO -> ledger -> MongoDB."""

from __future__ import annotations

import aiohttp

from shared.stores import mongo_client
from tests.stack import ServiceStack

NYC = {"lat": "40.730610", "lon": "-73.935242", "query": "food"}


async def test_three_tokens_buy_three_memes_and_the_ledger_agrees(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    stack = shared_stack
    headers = await stack.create_account(http, "e2e-three", 3)
    statuses, remaining = [], []
    for _ in range(4):
        async with http.get(f"{stack.gateway}/memes", params=NYC, headers=headers) as response:
            statuses.append(response.status)
            body = await response.json()
            assert response.headers["X-Request-ID"]
            if response.status == 200:
                remaining.append(body["tokens_remaining"])
                assert body["tokens_charged"] == 1
                assert body["kind"] == "text"
                assert body["query"] == "food"
                assert body["location"]["country"] == "US"
                assert body["text"]
            else:
                assert body["error"]["code"] == "insufficient_tokens"
    assert statuses == [200, 200, 200, 402]
    assert remaining == [2, 1, 0]

    await stack.drained("e2e-three")
    stored = await stack.mongo_account("e2e-three")
    assert stored is not None
    assert (stored["balance"], stored["seq"]) == (0, 3)
    assert stored["usage"]["calls"] == 3
    journal = await _journal(stack, "e2e-three")
    assert [(e["type"], e["amount"], e["seq"]) for e in journal] == [
        ("debit", 1, n) for n in (1, 2, 3)
    ]


async def test_a_bad_token_gets_401_and_charges_nothing(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    stack = shared_stack
    await stack.create_account(http, "e2e-badjwt", 5)
    forged = stack.token("e2e-badjwt")[:-4] + "AAAA"
    for headers in ({"Authorization": f"Bearer {forged}"}, {}, {"Authorization": "Basic abc"}):
        async with http.get(f"{stack.gateway}/memes", params=NYC, headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"]["code"] == "unauthorized"
    live = await stack.redis_account("e2e-badjwt")
    assert (live["balance"], live["seq"]) == ("5", "0")


async def _journal(stack: ServiceStack, account: str) -> list[dict[str, object]]:
    client = mongo_client(stack.settings)
    try:
        cursor = client[stack.settings.mongo_db]["ledger"].find({"account": account}).sort("seq", 1)
        return [doc async for doc in cursor]
    finally:
        await client.close()


async def test_the_operators_cli_reads_what_the_path_wrote(
    shared_stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    stack = shared_stack
    code, output = await stack.maas("accounts", "create", "--id", "cli-made", "--tokens", "4")
    assert (code, output.strip()) == (0, "created cli-made with 4 tokens")
    assert (await stack.maas("accounts", "create", "--id", "cli-made", "--tokens", "4"))[0] == 1
    code, token = await stack.maas("token", "--sub", "cli-made", "--roles", "ai")
    assert code == 0
    for query in ("first", "second"):
        async with http.get(
            f"{stack.gateway}/memes",
            params={**NYC, "query": query},
            headers={"Authorization": f"Bearer {token.strip()}"},
        ) as response:
            assert response.status == 200
    async with http.get(
        f"{stack.gateway}/v1/account", headers={"Authorization": f"Bearer {token.strip()}"}
    ) as response:
        own = await response.json()
    assert (own["tokens"], own["roles"]) == (2, ["ai"])
    assert own["usage"] == {"calls": 2, "tokens_spent": 2}
    await stack.drained("cli-made")
    code, history = await stack.maas("ledger", "history", "--account", "cli-made")
    assert code == 0
    lines = history.strip().splitlines()
    assert len(lines) == 2
    assert "seq      2" in lines[0]
    assert "seq      1" in lines[1]
    assert all("debit  -1 " in line for line in lines)
    code, report = await stack.maas("reconcile", "--account", "cli-made")
    assert code == 0, report
    assert "accounts/s" not in report, "piped output stays plain"
    code, drawn = await stack.maas_at_a_terminal("reconcile")
    assert code == 0, drawn
    assert "accounts/s" in drawn  # done out of the total, the rate and the time left
    assert "100%" in drawn
    assert "cli-made" in report
    assert report.strip().splitlines()[-1].endswith("ok")
