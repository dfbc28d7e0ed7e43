"""A full cache never blocks charging: the geocoder cache has its own LRU Redis instance."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from shared.keys import Keys
from tests.fakes.geocoder_server import FakeGeocoder
from tests.stack import StackFactory


@pytest.fixture
async def fake_geocoder() -> AsyncIterator[FakeGeocoder]:
    async with FakeGeocoder() as server:
        yield server


async def test_a_full_cache_evicts_and_charges_go_on(
    make_stack: StackFactory, http: aiohttp.ClientSession, fake_geocoder: FakeGeocoder
) -> None:
    stack = await make_stack(
        geocoder="nominatim",
        geocoder_url=fake_geocoder.base_url,
        rate_limits={"default": {"rate": 1000, "burst": 1000}},
    )
    cache = aioredis.Redis.from_url(stack.settings.cache_redis_url or "")
    balances = aioredis.Redis.from_url(stack.settings.redis_url)
    try:
        info = await cache.config_get("maxmemory*")
        assert info["maxmemory-policy"] == "allkeys-lru"
        filler = b"x" * 10_000
        for start in range(0, 1_000, 100):  # 10 MB into a 2 MB instance
            async with cache.pipeline(transaction=False) as pipe:
                for n in range(start, start + 100):
                    pipe.set(f"filler:{n}", filler)
                await pipe.execute()
        assert (await cache.info("stats"))["evicted_keys"] > 0

        headers = await stack.create_account(http, "cache-full", 200)
        for n in range(200):
            point = {"lat": f"{-60 + n * 0.5:.4f}", "lon": f"{n * 0.7:.4f}", "query": "rain"}
            async with http.get(f"{stack.gateway}/memes", params=point, headers=headers) as answer:
                assert answer.status == 200, await answer.text()
                assert (await answer.json())["location"]["source"] == "nominatim"
        assert fake_geocoder.calls == 200
        live = await stack.redis_account("cache-full")
        assert (live["balance"], live["seq"]) == ("0", "200")
        assert await cache.keys(Keys.geocode("nominatim", "*"))
        assert not await balances.keys(Keys.geocode("*", "*"))
    finally:
        await cache.aclose()
        await balances.aclose()
