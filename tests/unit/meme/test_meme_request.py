from typing import Any

import pytest

from services.meme.domain.request import MemeRequest, parse_request
from shared.errors import ApiError


def test_full_body_parses() -> None:
    body = {
        "query": "  cats\n",
        "lat": 48.85,
        "lon": 2,
        "kind": "ai",
        "format": "png",
        "request_id": "r1",
    }
    assert parse_request(body) == MemeRequest("cats", 48.85, 2.0, "ai", "png", "r1")


def test_optional_fields_default() -> None:
    parsed = parse_request({"query": "cats", "lat": None, "lon": None, "kind": "text"})
    assert parsed == MemeRequest("cats", None, None, "text", "json", "")


@pytest.mark.parametrize(
    "body",
    [
        {"lat": 1, "lon": 1, "kind": "text"},
        {"query": " \t", "lat": 1, "lon": 1, "kind": "text"},
        {"query": 5, "lat": 1, "lon": 1, "kind": "text"},
        {"query": "cats", "lat": 91, "lon": 1, "kind": "text"},
        {"query": "cats", "lat": 1, "lon": -180.5, "kind": "text"},
        {"query": "cats", "lat": True, "lon": 1, "kind": "text"},
        {"query": "cats", "lat": "1", "lon": 1, "kind": "text"},
        {"query": "cats", "lat": 1, "lon": None, "kind": "text"},
        {"query": "cats", "lat": float("nan"), "lon": 1, "kind": "text"},
        {"query": "cats", "lat": 1, "lon": 1, "kind": "gif"},
        {"query": "cats", "lat": 1, "lon": 1, "kind": "text", "format": "gif"},
        {"query": "cats", "lat": 1, "lon": 1, "kind": "text", "request_id": 7},
    ],
)
def test_bad_bodies_are_invalid_params(body: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        parse_request(body)
    assert caught.value.code == "invalid_params"
    assert caught.value.status == 400
