from __future__ import annotations

import pytest

from shared.accounting.prices import choose_kind, price_of, rate_limit_for
from shared.errors import ApiError
from shared.settings import RateLimit, Settings


@pytest.mark.parametrize(
    ("requested", "roles", "ai_up", "kind"),
    [
        (None, set(), True, "text"),
        (None, {"ai"}, True, "ai"),
        (None, {"ai"}, False, "text"),
        ("text", {"ai"}, True, "text"),
        ("ai", {"ai"}, True, "ai"),
    ],
)
def test_kind_selection(requested: str | None, roles: set[str], ai_up: bool, kind: str) -> None:
    assert choose_kind(requested, roles, ai_up) == kind  # type: ignore[arg-type]


def test_ai_without_the_role_is_forbidden() -> None:
    with pytest.raises(ApiError) as caught:
        choose_kind("ai", {"admin"}, True)
    assert (caught.value.status, caught.value.code) == (403, "forbidden")


def test_explicit_ai_while_ai_is_down_is_503() -> None:
    with pytest.raises(ApiError) as caught:
        choose_kind("ai", {"ai"}, False)
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")


def test_prices_come_from_settings_and_an_unknown_kind_has_none() -> None:
    settings = Settings(price_text=3, price_ai=7)
    assert (price_of("text", settings), price_of("ai", settings)) == (3, 7)
    with pytest.raises(ValueError, match="no price for meme kind 'video'"):
        price_of("video", settings)  # type: ignore[arg-type]


def test_the_most_generous_role_bucket_wins() -> None:
    settings = Settings(
        rate_limits={"default": RateLimit(rate=5, burst=10), "ai": RateLimit(rate=50, burst=20)}
    )
    assert rate_limit_for({"ai"}, settings) == RateLimit(rate=50, burst=20)
    assert rate_limit_for(set(), settings) == RateLimit(rate=5, burst=10)
    assert rate_limit_for(set(), Settings(rate_limits={})) is None
