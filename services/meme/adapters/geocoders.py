"""Reverse geocoders: coordinates to the place a meme is about.

The offline geocoder (GeoNames k-d tree, in memory) is the default and the safety net:
remote providers are cached in Redis by geohash and fall back to it on any failure, so
a slow or broken provider costs at most its timeout and never an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import aiohttp
import orjson
import reverse_geocoder
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.meme.domain.places import Match, Place, geohash
from shared.keys import Keys
from shared.metrics import LATENCY_BUCKETS
from shared.tally import Tally
from shared.web import read_bounded

log = logging.getLogger(__name__)
TROUBLE = Tally(log, "the geocoder failed; answered offline (by provider:error)")

NOMINATIM_URL = "https://nominatim.openstreetmap.org"
GOOGLE_URL = "https://maps.googleapis.com"
USER_AGENT = "maas-meme/0.1"
MAX_ANSWER_BYTES = 256 * 1024  # a reverse-geocoding answer is a few KiB

GEOCODER_CACHE = Counter(
    "maas_geocoder_cache_total", "Remote geocoder cache lookups by result", ["result"]
)
GEOCODER_DURATION = Histogram(
    "maas_geocoder_duration_seconds",
    "Time to reverse-geocode a point, by provider",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
GEOCODER_ERRORS = Counter(
    "maas_geocoder_errors_total", "Remote geocoder failures (answered offline)", ["provider"]
)


class Geocoder(Protocol):
    async def reverse(self, lat: float, lon: float) -> Place: ...

    async def reverse_many(self, points: list[tuple[float, float]]) -> list[Place]:
        """The places of many points at once (a batch of memes), in their order."""
        ...


class OfflineGeocoder:
    """GeoNames towns of 1,000+ people in a k-d tree: ~10 µs a lookup, no network.

    The tree is built once per process (the library keeps a singleton), so the
    synchronous query is cheap enough to run on the event loop.
    """

    def __init__(self) -> None:
        self._tree = reverse_geocoder.RGeocoder(mode=1, verbose=False)
        self._duration = GEOCODER_DURATION.labels("offline")

    def lookup(self, lat: float, lon: float, source: str = "offline") -> Place:
        return self.lookup_many([(lat, lon)], source)[0]

    def lookup_many(
        self, points: list[tuple[float, float]], source: str = "offline"
    ) -> list[Place]:
        """One query of the tree for all the points: its fixed cost is most of a lookup."""
        started = time.perf_counter()
        rows = self._tree.query(points)
        places = [
            Match(
                row["name"], row["admin1"], row["cc"], float(row["lat"]), float(row["lon"])
            ).place(lat, lon, source)
            for row, (lat, lon) in zip(rows, points, strict=True)
        ]
        self._duration.observe(time.perf_counter() - started)
        return places

    async def reverse(self, lat: float, lon: float) -> Place:
        return self.lookup(lat, lon)

    async def reverse_many(self, points: list[tuple[float, float]]) -> list[Place]:
        return self.lookup_many(points) if points else []


class GeoCache:
    """Provider answers in the cache Redis by geohash cell; a Redis failure is only a miss.

    Without a cache instance (`redis` None) every lookup is a miss.
    """

    def __init__(self, redis: Redis | None, provider: str, precision: int, ttl_s: int) -> None:
        self._redis = redis
        self._provider = provider
        self._precision = precision
        self._ttl_s = ttl_s

    def key(self, lat: float, lon: float) -> str:
        return Keys.geocode(self._provider, geohash(lat, lon, self._precision))

    async def get(self, key: str) -> Match | None:
        if self._redis is None:
            return None
        try:
            raw = await self._redis.get(key)
            match = Match.from_json(orjson.loads(raw)) if raw is not None else None
        except (RedisError, ValueError, KeyError, TypeError) as exc:
            log.warning("geocode cache read failed", extra={"error": repr(exc)})
            match = None
        GEOCODER_CACHE.labels("hit" if match else "miss").inc()
        return match

    async def put(self, key: str, match: Match) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.set(key, orjson.dumps(match.to_json()), ex=self._ttl_s)
        except RedisError as exc:
            log.warning("geocode cache write failed", extra={"error": repr(exc)})


class ProviderError(Exception):
    """The provider answered, but with nothing we can name (error status, no result)."""


# Timeouts, network errors, error answers and malformed or oversized bodies (parsing
# an answer of the wrong shape raises any of these): all mean "ask offline".
_PROVIDER_FAILURES = (
    TimeoutError,
    aiohttp.ClientError,
    ProviderError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
)


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a provider answers and how long to wait for it: what every provider shares."""

    base_url: str
    fallback: OfflineGeocoder
    cache: GeoCache
    timeout_s: float
    concurrency: int
    api_key: str = ""


class RemoteGeocoder(ABC):
    """The shared cache, concurrency limit, timeout and offline fallback of a provider."""

    provider: ClassVar[str]

    def __init__(self, session: aiohttp.ClientSession, upstream: Upstream) -> None:
        self._session = session
        self._base_url = upstream.base_url.rstrip("/")
        self._fallback = upstream.fallback
        self._cache = upstream.cache
        self._timeout_s = upstream.timeout_s
        self._limit = asyncio.Semaphore(upstream.concurrency)
        self._api_key = upstream.api_key

    async def reverse(self, lat: float, lon: float) -> Place:
        key = self._cache.key(lat, lon)
        if cached := await self._cache.get(key):
            return cached.place(lat, lon, self.provider)
        started = time.perf_counter()
        try:
            # The wait for a free slot counts against the timeout: a saturated
            # provider degrades to offline answers instead of queueing callers.
            async with asyncio.timeout(self._timeout_s), self._limit:
                match = await self._fetch(lat, lon)
        except _PROVIDER_FAILURES as exc:
            GEOCODER_ERRORS.labels(self.provider).inc()
            TROUBLE.add(f"{self.provider}:{type(exc).__name__}")
            return self._fallback.lookup(lat, lon, source="offline-fallback")
        finally:
            GEOCODER_DURATION.labels(self.provider).observe(time.perf_counter() - started)
        await self._cache.put(key, match)
        return match.place(lat, lon, self.provider)

    async def reverse_many(self, points: list[tuple[float, float]]) -> list[Place]:
        """Each point on its own (each cached, limited and timed), all at once."""
        return list(await asyncio.gather(*(self.reverse(lat, lon) for lat, lon in points)))

    async def _get_json(self, path: str, params: dict[str, str]) -> Any:
        async with self._session.get(
            f"{self._base_url}{path}",
            params=params,
            headers={"User-Agent": USER_AGENT, "Accept-Language": "en"},
        ) as response:
            if response.status != 200:
                raise ProviderError(f"{self.provider} answered HTTP {response.status}")
            return orjson.loads(await read_bounded(response, MAX_ANSWER_BYTES))

    @abstractmethod
    async def _fetch(self, lat: float, lon: float) -> Match:
        """Ask the provider; raise on anything that is not a usable place."""


class NominatimGeocoder(RemoteGeocoder):
    """OpenStreetMap Nominatim `/reverse?format=jsonv2`, at city zoom level."""

    provider = "nominatim"
    _NAME_FIELDS = ("city", "town", "village", "hamlet", "municipality", "suburb", "county")

    async def _fetch(self, lat: float, lon: float) -> Match:
        body = await self._get_json(
            "/reverse",
            {"format": "jsonv2", "lat": f"{lat:.6f}", "lon": f"{lon:.6f}", "zoom": "10"},
        )
        if not isinstance(body, dict) or "error" in body:
            raise ProviderError(f"nominatim found nothing: {body!r:.200}")
        address = body.get("address") or {}
        name = next((address[f] for f in self._NAME_FIELDS if address.get(f)), None)
        name = name or body.get("name") or address.get("state")
        if not name:
            raise ProviderError("nominatim answer has no place name")
        return Match(
            str(name),
            str(address.get("state", "")),
            str(address.get("country_code", "")).upper(),
            float(body["lat"]),
            float(body["lon"]),
        )


class GoogleGeocoder(RemoteGeocoder):
    """Google Geocoding API `/maps/api/geocode/json?latlng=`; prefers the locality result."""

    provider = "google"
    _NAME_TYPES = (
        "locality",
        "postal_town",
        "sublocality",
        "administrative_area_level_2",
        "administrative_area_level_1",
    )

    async def _fetch(self, lat: float, lon: float) -> Match:
        body = await self._get_json(
            "/maps/api/geocode/json", {"latlng": f"{lat:.6f},{lon:.6f}", "key": self._api_key}
        )
        status = body.get("status") if isinstance(body, dict) else None
        if status != "OK" or not body.get("results"):
            raise ProviderError(f"google answered status {status!r}")
        results: list[dict[str, Any]] = body["results"]
        result = next((r for r in results if "locality" in r.get("types", ())), results[0])
        parts: dict[str, dict[str, Any]] = {}
        for component in result.get("address_components", ()):
            for kind in component.get("types", ()):
                parts.setdefault(kind, component)
        name = next((parts[t]["long_name"] for t in self._NAME_TYPES if t in parts), None)
        if not name:
            raise ProviderError("google answer has no place name")
        location = result["geometry"]["location"]
        return Match(
            str(name),
            str(parts.get("administrative_area_level_1", {}).get("long_name", "")),
            str(parts.get("country", {}).get("short_name", "")),
            float(location["lat"]),
            float(location["lng"]),
        )
