"""Which kind of meme a caller gets, what it costs, and how fast it may ask. Pure."""

from __future__ import annotations

from collections.abc import Collection

from shared.claims import AI_ROLE
from shared.contract import Kind
from shared.errors import ApiError
from shared.settings import RateLimit, Settings


def price_of(kind: Kind, settings: Settings) -> int:
    """Tokens one meme of `kind` costs; a kind without a price is a bug, never free text."""
    prices: dict[str, int] = {"text": settings.price_text, "ai": settings.price_ai}
    if kind not in prices:
        raise ValueError(f"no price for meme kind {kind!r}")
    return prices[kind]


def choose_kind(requested: Kind | None, roles: Collection[str], ai_available: bool) -> Kind:
    """Premium callers default to AI while it is up, and to text while it is down."""
    if requested == "ai":
        if AI_ROLE not in roles:
            raise ApiError("forbidden", "AI memes need the 'ai' role")
        if not ai_available:
            raise ApiError(
                "upstream_unavailable", "AI memes are unavailable right now; nothing was charged"
            )
        return "ai"
    if requested == "text":
        return "text"
    return "ai" if AI_ROLE in roles and ai_available else "text"


def rate_limit_for(roles: Collection[str], settings: Settings) -> RateLimit | None:
    """The most generous bucket among the caller's roles (`default` for everyone)."""
    limits = [settings.rate_limits[r] for r in roles if r in settings.rate_limits]
    if "default" in settings.rate_limits:
        limits.append(settings.rate_limits["default"])
    return max(limits, key=lambda limit: (limit.rate, limit.burst), default=None)
