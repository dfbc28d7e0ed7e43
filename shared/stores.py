"""Clients for Redis and MongoDB, built the same way by every service and the CLI."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeAlias

import pymongo.errors
import redis.asyncio as aioredis
import redis.exceptions
from pymongo import AsyncMongoClient

from shared.aio import sleep_unless
from shared.settings import Settings

# Redis (restarting, loading its AOF, failing over) or MongoDB (a primary stepping down, a
# restart) out of reach: worth retrying, nothing wrong with the request or the code.
STORE_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    pymongo.errors.ConnectionFailure,
)

Redis: TypeAlias = "aioredis.Redis | aioredis.RedisCluster"
MongoDoc: TypeAlias = dict[str, Any]
log = logging.getLogger(__name__)


def lua_script(name: str) -> str:
    """One of the product's Redis scripts (shared/lua/): each is one atomic step."""
    return (resources.files("shared") / "lua" / f"{name}.lua").read_text()


def redis_client(settings: Settings) -> Redis:
    """A bounded pool: a burst of requests waits for a connection instead of failing."""
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(
            settings.redis_url,
            decode_responses=True,
            max_connections=settings.redis_max_connections * 8,
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        decode_responses=True,
        max_connections=settings.redis_max_connections,
        timeout=5,
    )
    return aioredis.Redis(connection_pool=pool)


def cache_client(settings: Settings) -> aioredis.Redis | None:
    """The cache instance (LRU, bounded), never the one that holds balances; None: no cache."""
    if settings.cache_redis_url is None:
        return None
    return aioredis.Redis.from_url(
        settings.cache_redis_url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1
    )


def mongo_client(settings: Settings) -> AsyncMongoClient[MongoDoc]:
    return AsyncMongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True
    )


async def while_leased(
    redis: Redis,
    lease_key: str,
    interval_s: float,
    work: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    failure: str,
) -> None:
    """Run `work` every `interval_s` in the one process that holds the lease.

    The lease outlives a few intervals, so another process takes over when its holder is
    gone; a failed round is logged and the next one runs as usual.
    """
    lease = redis.register_script(lua_script("lease"))
    owner, ttl_ms = uuid.uuid4().hex, int(3 * interval_s * 1000)
    held = False
    while not stop.is_set():
        try:
            now_held = bool(await lease(keys=[lease_key], args=[owner, ttl_ms]))
            if now_held != held:
                log.info("lease taken" if now_held else "lease lost", extra={"lease": lease_key})
                held = now_held
            if held:
                await work()
        except Exception:
            log.warning(failure, exc_info=True)
        await sleep_unless(stop, interval_s)
