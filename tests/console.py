"""Drive the operators' console over HTTP as a browser would: cookies, forms, CSRF."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from services.ledger.console.gate import COOKIE
from shared.stores import mongo_client
from tests.stack import PARIS, ServiceStack, wait_for

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def ledger_url(stack: ServiceStack) -> str:
    return f"http://127.0.0.1:{stack.settings.ledger_port}"


class ConsoleClient:
    """One operator's browser: a cookie jar that keeps the console's session cookie."""

    def __init__(self, base: str) -> None:
        self.base = base
        # unsafe: the jar keeps cookies for IP-address hosts such as 127.0.0.1
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), raise_for_status=False
        )

    async def __aenter__(self) -> ConsoleClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.close()

    async def sign_in(self, token: str) -> aiohttp.ClientResponse:
        async with self.http.post(
            f"{self.base}/console/signin", data={"token": token}, allow_redirects=False
        ) as response:
            await response.read()
            return response

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(f"{self.base}{path}", allow_redirects=False) as response:
            return response.status, await response.text()

    async def csrf(self, path: str = "/console/dead-letters") -> str:
        status, page = await self.get(path)
        assert status == 200, page
        match = CSRF.search(page)
        assert match, page
        return match.group(1)

    async def post(
        self, path: str, form: dict[str, str], csrf: str | None = None, base: str | None = None
    ) -> tuple[int, str]:
        data = {**form, **({"csrf": csrf} if csrf is not None else {})}
        async with self.http.post(
            f"{base or self.base}{path}", data=data, allow_redirects=False
        ) as response:
            return response.status, await response.text()

    @property
    def session_cookie(self) -> Any:
        return next((c for c in self.http.cookie_jar if c.key == COOKIE), None)


async def memes(stack: ServiceStack, http: aiohttp.ClientSession, account: str, n: int) -> None:
    """Charge `n` text memes to `account` through the gateway."""
    for _ in range(n):
        async with http.get(
            f"{stack.gateway}/memes", params=PARIS, headers=stack.auth(account)
        ) as response:
            assert response.status == 200


async def account_with_memes(
    stack: ServiceStack, http: aiohttp.ClientSession, account: str, tokens: int, n: int
) -> None:
    """A new account charged `n` memes, all of them applied by the ledger."""
    await stack.create_account(http, account, tokens)
    await memes(stack, http, account, n)
    await stack.drained(account)


async def indexed_dead_letters(stack: ServiceStack, count: int) -> list[dict[str, Any]]:
    """Wait until `count` messages are in the DLQ and in the ledger's index; their entries."""
    client = mongo_client(stack.settings)
    found: list[dict[str, Any]] = []
    try:

        async def indexed() -> bool:
            nonlocal found
            letters = client[stack.settings.mongo_db]["dead_letters"]
            found = [doc async for doc in letters.find({"resolved_at": None})]
            return len(found) >= count and await stack.dead_letters() >= count

        await wait_for(indexed, 90, f"{count} dead letters in the index")
    finally:
        await client.close()
    return found
