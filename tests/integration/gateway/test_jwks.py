"""A gateway whose tokens come from an identity provider's JWKS, served by a real fake."""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from tests.fakes.identity_provider import IdentityProvider
from tests.stack import ServiceStack, StackFactory

TTL_S = 2


async def meme(http: aiohttp.ClientSession, stack: ServiceStack, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get(f"{stack.gateway}/memes", params={"query": "keys"}, headers=headers) as r:
        await r.read()
        return r.status


async def test_rotation_unknown_key_storms_and_removal(
    make_stack: StackFactory, http: aiohttp.ClientSession, idp: IdentityProvider
) -> None:
    stack = await make_stack(
        jwt_jwks_url=idp.jwks_url,
        jwt_algorithms=["RS256", "ES256"],
        jwt_jwks_ttl_s=TTL_S,
        jwt_jwks_cooldown_s=1.0,
        rate_limits={"default": {"rate": 1000, "burst": 1000}},
    )
    admin = {"Authorization": f"Bearer {idp.token('current', 'operator', ['admin'])}"}
    async with http.post(
        f"{stack.gateway}/v1/accounts", json={"id": "jwks-user", "tokens": 1000}, headers=admin
    ) as response:
        assert response.status == 201, await response.text()
    user = idp.token("current", "jwks-user", [])
    assert await meme(http, stack, user) == 200

    # A slow provider and 100 tokens with unknown key ids: text memes stay fast.
    idp.delay_s = 1.5
    storm = [
        asyncio.create_task(meme(http, stack, idp.foreign_token(f"forged-{n}", "jwks-user")))
        for n in range(100)
    ]
    await asyncio.sleep(0.05)
    latencies = []
    for _ in range(10):
        started = time.perf_counter()
        assert await meme(http, stack, user) == 200
        latencies.append(time.perf_counter() - started)
    assert set(await asyncio.gather(*storm)) == {401}
    assert statistics.median(latencies) < 0.050, latencies
    idp.delay_s = 0

    # A key published later verifies; a removed key stops verifying within the TTL.
    idp.add_key("next", "ES256")
    await asyncio.sleep(1.1)  # past the cooldown of the storm's fetch
    assert await meme(http, stack, idp.token("next", "jwks-user", [])) == 200
    idp.remove_key("current")
    removed_at = time.monotonic()
    served = 12
    while await meme(http, stack, user) == 200:
        served += 1
        assert time.monotonic() - removed_at < TTL_S + 1, "a removed key still verifies"
        await asyncio.sleep(0.1)
    assert await meme(http, stack, user) == 401
    live = await stack.redis_account("jwks-user")
    assert live["seq"] == str(served)  # the 401s charged nothing
