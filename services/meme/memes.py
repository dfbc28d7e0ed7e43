"""Making a meme: locate the caller, then write the caption with the requested generator.

Text memes never touch the AI adapter or its semaphore, so their latency is the
geocoder plus a few microseconds, whatever the AI endpoint is doing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from services.meme.adapters.geocoders import Geocoder
from services.meme.domain.formats import text_meme
from services.meme.domain.places import Place
from services.meme.domain.request import MemeRequest
from shared import tracing
from shared.errors import ApiError
from shared.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:  # the AI adapter (and openai) is imported only when AI is configured
    from services.meme.adapters.ai import AiCaptioner

MEMES_GENERATED = Counter(
    "maas_meme_generated_total",
    "Memes generated, by generator and outcome",
    ["generator", "outcome"],
)
MEME_DURATION = Histogram(
    "maas_meme_generate_duration_seconds",
    "Time to generate a meme's caption, location included",
    ["generator"],
    buckets=LATENCY_BUCKETS,
)


@dataclass(frozen=True, slots=True)
class Meme:
    text: str
    kind: str
    generator: str
    location: Place | None

    def to_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "kind": self.kind,
            "generator": self.generator,
            "location": self.location.to_json() if self.location else None,
        }


class MemeMaker:
    def __init__(self, geocoder: Geocoder, captioner: AiCaptioner | None) -> None:
        self._geocoder = geocoder
        self._captioner = captioner
        self._texts_made = MEMES_GENERATED.labels("template", "ok")
        self._text_duration = MEME_DURATION.labels("template")

    @property
    def ai_available(self) -> bool:
        return self._captioner is not None

    async def make(self, request: MemeRequest) -> Meme:
        generator = "ai" if request.kind == "ai" else "template"
        started = time.perf_counter()
        outcome = "ok"
        try:
            with tracing.span("meme generate", {"maas.generator": generator}):
                return await self._make(request)
        except ApiError as error:
            outcome = error.code
            raise
        except Exception:
            outcome = "internal_error"
            raise
        finally:
            MEMES_GENERATED.labels(generator, outcome).inc()
            MEME_DURATION.labels(generator).observe(time.perf_counter() - started)

    async def make_texts(self, requests: list[MemeRequest]) -> list[Meme]:
        """Text memes for a batch of requests: their places found in one geocoder call.

        No spans: a batch holds requests of many traces, and only unsampled ones (the
        gateway sends a sampled request's meme on its own, through `make`).
        """
        started = time.perf_counter()
        points = {
            i: (r.lat, r.lon)
            for i, r in enumerate(requests)
            if r.lat is not None and r.lon is not None
        }
        places = await self._geocoder.reverse_many(list(points.values()))
        place_at = dict(zip(points, places, strict=True))
        memes = []
        for i, request in enumerate(requests):
            place = place_at.get(i)
            meme = text_meme(request.query, place.name if place else None, request.request_id)
            memes.append(Meme(meme.text, "text", f"template/{meme.format}", place))
        self._texts_made.inc(len(memes))
        elapsed = time.perf_counter() - started
        for _ in memes:
            self._text_duration.observe(elapsed)
        return memes

    async def _make(self, request: MemeRequest) -> Meme:
        captioner = self._captioner if request.kind == "ai" else None
        if request.kind == "ai" and captioner is None:
            raise ApiError("ai_unavailable", "no AI endpoint is configured")
        place = None
        if request.lat is not None and request.lon is not None:
            with tracing.span("geocode"):
                place = await self._geocoder.reverse(request.lat, request.lon)
        if captioner is not None:
            with tracing.span("ai caption", {"gen_ai.request.model": captioner.model}):
                caption = await captioner.caption(request.query, place)
            return Meme(caption, "ai", f"ai/{captioner.model}", place)
        meme = text_meme(request.query, place.name if place else None, request.request_id)
        return Meme(meme.text, "text", f"template/{meme.format}", place)
