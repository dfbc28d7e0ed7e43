from __future__ import annotations

import re
from typing import Any

import pytest

from services.gateway.domain.params import (
    LAT_LIMIT,
    LON_LIMIT,
    coordinate_pattern,
    parse_coordinate,
    parse_meme_request,
    parse_query,
    query_pattern,
)
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


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"lat": "1", "lon": "1", "lng": "1", "query": "x"}, "lng"),
        ({"lat": None, "lon": "1", "query": "x"}, "lat"),
        ({"lat": "1", "lng": None, "query": "x"}, "lon"),
        ({"lat": " 1", "lon": "1", "query": "x"}, "lat"),
        ({"lat": "90.000000000000001", "lon": "1", "query": "x"}, "lat"),
        ({"lat": "1", "lon": "0180", "query": "x"}, "lon"),
        ({"query": " " + "x" * MAX_QUERY_CHARS}, "query"),
        ({"query": "x", "format": None}, "format"),
        ({"query": "x", "format": ""}, "format"),
        ({"query": "x", "kind": None}, "kind"),
    ],
)
def test_what_the_schema_forbids_the_server_refuses(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_meme_request(values)
    assert caught.value.details["field"] == field


def test_a_json_body_may_name_the_longitude_lng() -> None:
    assert parse_meme_request({"lat": 1, "lng": "-2.5", "query": "x"}).lon == -2.5


def coordinate_candidates() -> list[str]:
    numbers = [str(i) for i in range(1000)] + [f"0{i}" for i in range(1000)]
    numbers += [f"00{i}" for i in range(100)]
    decimals = [f"{n}{fraction}" for n in numbers for fraction in ("", ".0", ".5")]
    decimals += [".5", ".", "", "1e2", "9O", "90.000000000000001", "180.000000000000000"]
    return [f"{sign}{d}" for sign in ("", "+", "-") for d in decimals]


@pytest.mark.parametrize("limit", [LAT_LIMIT, LON_LIMIT])
def test_the_coordinate_pattern_accepts_exactly_what_the_parser_accepts(limit: int) -> None:
    pattern = re.compile(coordinate_pattern(limit))
    for raw in coordinate_candidates():
        try:
            parse_coordinate("x", raw, limit)
            accepted = True
        except ApiError:
            accepted = False
        assert accepted == bool(pattern.match(raw)), raw


QUERY_CANDIDATES = [
    "food", " food ", "\tfood\n", "a\tb", "a b", "a\u00a0b", "\u3000x\u2028", "   ", "",
    "zero\u200bwidth", "bidi\u202eoverride", "x\U000e0001y", "\U0001f600 pizza", "\x00",
    "\x85café\x85", "tab\x0bmiddle",
]  # fmt: skip


@pytest.mark.parametrize("raw", QUERY_CANDIDATES)
def test_the_query_pattern_accepts_exactly_what_the_parser_accepts(raw: str) -> None:
    try:
        parse_query(raw)
        accepted = True
    except ApiError:
        accepted = False
    assert accepted == bool(re.match(query_pattern(), raw))
