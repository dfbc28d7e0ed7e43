"""Fixtures of the integration tests that talk to the session's Redis directly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.settings import Settings
from shared.stores import Redis, redis_client


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """The product's Redis client on the session's Redis."""
    client = redis_client(Settings(redis_url=redis_url))
    yield client
    await client.aclose()
