"""Settings -> adapters -> app: the one place that decides what the meme service talks to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from services.meme.adapters.geocoders import (
    GOOGLE_URL,
    NOMINATIM_URL,
    GeoCache,
    Geocoder,
    GoogleGeocoder,
    NominatimGeocoder,
    OfflineGeocoder,
    Upstream,
)
from services.meme.app import add_routes
from services.meme.deps import DEPS, MemeService
from services.meme.memes import MemeMaker
from shared import tracing
from shared.contract import MAX_MEME_BATCH_BYTES
from shared.metrics import http_metrics_middleware
from shared.settings import Settings
from shared.stores import cache_client
from shared.web import BODY_TIMEOUT_S, error_middleware

if TYPE_CHECKING:
    import openai

    from services.meme.adapters.ai import AiCaptioner


def _remote_geocoder(
    settings: Settings,
    session: aiohttp.ClientSession,
    offline: OfflineGeocoder,
    redis: Redis | None,
) -> Geocoder:
    cache = GeoCache(
        redis, settings.geocoder, settings.geohash_precision, settings.geocode_cache_ttl_s
    )
    google = settings.geocoder == "google"
    if google and not settings.google_api_key:
        raise ValueError("MAAS_GOOGLE_API_KEY is required when MAAS_GEOCODER=google")
    upstream = Upstream(
        settings.geocoder_url or (GOOGLE_URL if google else NOMINATIM_URL),
        offline,
        cache,
        settings.geocoder_timeout_s,
        settings.geocoder_concurrency,
        settings.google_api_key or "",
    )
    return GoogleGeocoder(session, upstream) if google else NominatimGeocoder(session, upstream)


def _ai(settings: Settings) -> tuple[openai.AsyncOpenAI, AiCaptioner]:
    """The OpenAI client and the captioner over it. Imported here, when AI is configured:
    the openai package is a quarter of the service's start."""
    import openai  # noqa: PLC0415 - loaded only when AI memes are configured

    from services.meme.adapters.ai import AiCaptioner, BoundedTransport  # noqa: PLC0415

    client = openai.AsyncOpenAI(
        base_url=settings.openai_base_url,
        # Local OpenAI-compatible servers often need no key; the client insists on one.
        api_key=settings.openai_api_key or "unused",
        timeout=settings.ai_timeout_s,
        max_retries=settings.ai_max_retries,
        http_client=openai.DefaultAsyncHttpx2Client(transport=BoundedTransport()),
    )
    captioner = AiCaptioner(
        client,
        model=settings.ai_model,
        deadline_s=settings.ai_timeout_s,
        concurrency=settings.ai_concurrency,
    )
    return client, captioner


def build_app(settings: Settings) -> web.Application:
    """The meme app; clients are opened on start-up and closed on shutdown."""
    offline = OfflineGeocoder()  # loads the k-d tree now, not on the first request

    async def clients(app: web.Application) -> AsyncIterator[None]:
        geocoder: Geocoder = offline
        captioner = None
        session = redis = ai_client = None
        try:
            if settings.geocoder != "offline":
                session = aiohttp.ClientSession(raise_for_status=False)
                redis = cache_client(settings)
                geocoder = _remote_geocoder(settings, session, offline, redis)
            if settings.ai_configured:
                ai_client, captioner = _ai(settings)
            app[DEPS] = MemeService(settings, MemeMaker(geocoder, captioner))
            yield
        finally:
            if ai_client is not None:
                await ai_client.close()
            if redis is not None:
                await redis.aclose()
            if session is not None:
                await session.close()

    app = web.Application(
        client_max_size=max(settings.max_body_bytes, MAX_MEME_BATCH_BYTES),
        middlewares=[*tracing.middlewares(), http_metrics_middleware("meme"), error_middleware],
    )
    app[BODY_TIMEOUT_S] = settings.body_timeout_s
    app.cleanup_ctx.append(clients)
    add_routes(app)
    return app
