from __future__ import annotations

from typing import Any

import pytest

from services.gateway.domain.params import parse_meme_request
from shared.contract import MAX_QUERY_CHARS
from shared.errors import ApiError


def test_a_full_query_string_request_is_typed() -> None:
    request = parse_meme_request(
        {"lat": "40.730610", "lon": "-73.935242", "query": "  food  ", "kind": "text"}
    )
    assert (request.lat, request.lon, request.query, request.kind, request.format) == (
        40.73061,
        -73.935242,
        "food",
        "text",
        "json",
    )


def test_json_bodies_may_say_lng_and_use_numbers() -> None:
    request = parse_meme_request({"lat": 48.85, "lng": 2.35, "query": "bread", "format": "png"})
    assert (request.lat, request.lon, request.format) == (48.85, 2.35, "png")


def test_coordinates_are_optional_together() -> None:
    request = parse_meme_request({"query": "cats"})
    assert (request.lat, request.lon, request.kind) == (None, None, None)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"lat": "1", "query": "x"}, "lon"),
        ({"lon": "1", "query": "x"}, "lat"),
        ({"lat": "nan", "lon": "1", "query": "x"}, "lat"),
        ({"lat": "1", "lon": "inf", "query": "x"}, "lon"),
        ({"lat": "1e999", "lon": "1", "query": "x"}, "lat"),
        ({"lat": "0x1A", "lon": "1", "query": "x"}, "lat"),
        ({"lat": "40°44'N", "lon": "1", "query": "x"}, "lat"),
        ({"lat": "90.0001", "lon": "1", "query": "x"}, "lat"),
        ({"lat": "1", "lon": "-180.5", "query": "x"}, "lon"),
        ({"lat": True, "lon": 1, "query": "x"}, "lat"),
        ({"lat": float("nan"), "lon": 1, "query": "x"}, "lat"),
        ({"lat": "1", "lon": "1"}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * (MAX_QUERY_CHARS + 1)}, "query"),
        ({"query": "bell\x07"}, "query"),
        ({"query": "zero\u200bwidth"}, "query"),
        ({"query": 42}, "query"),
        ({"query": "x", "kind": "video"}, "kind"),
        ({"query": "x", "format": "gif"}, "format"),
    ],
)
def test_bad_values_name_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_meme_request(values)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_params"
    assert caught.value.details["field"] == field


def test_the_longest_query_is_accepted() -> None:
    assert parse_meme_request({"query": "é" * MAX_QUERY_CHARS}).query == "é" * MAX_QUERY_CHARS
