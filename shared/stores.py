"""Clients for Redis and MongoDB, built the same way by every service and the CLI."""

from __future__ import annotations

from importlib import resources
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from shared.settings import Settings

Redis: TypeAlias = "aioredis.Redis | aioredis.RedisCluster"
MongoDoc: TypeAlias = dict[str, Any]


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
