"""The body of `POST /v1/generate`, validated into a typed request or a 400."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from services.meme.domain.formats import clean_query
from shared.contract import FORMATS, KINDS, ImageFormat, Kind
from shared.errors import ApiError

MAX_REQUEST_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class MemeRequest:
    query: str
    lat: float | None
    lon: float | None
    kind: Kind
    format: ImageFormat
    request_id: str


def _invalid(message: str) -> ApiError:
    return ApiError("invalid_params", message)


def _coordinate(body: dict[str, Any], name: str, limit: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{name} must be a number or null")
    if not math.isfinite(value) or abs(value) > limit:
        raise _invalid(f"{name} must be within ±{limit:g}")
    return float(value)


def parse_request(body: dict[str, Any]) -> MemeRequest:
    raw_query = body.get("query")
    if not isinstance(raw_query, str):
        raise _invalid("query must be a string")
    query = clean_query(raw_query)
    if not query:
        raise _invalid("query must not be empty")
    lat = _coordinate(body, "lat", 90)
    lon = _coordinate(body, "lon", 180)
    if (lat is None) != (lon is None):
        raise _invalid("lat and lon must both be numbers or both be null")
    raw_kind = body.get("kind")
    if raw_kind not in KINDS:
        raise _invalid("kind must be 'text' or 'ai'")
    kind: Kind = "ai" if raw_kind == "ai" else "text"
    raw_format = body.get("format") or "json"
    if raw_format not in FORMATS:
        raise _invalid("format must be 'json' or 'png'")
    fmt: ImageFormat = "png" if raw_format == "png" else "json"
    request_id = body.get("request_id") or ""
    if not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID_CHARS:
        raise _invalid(f"request_id must be a string of at most {MAX_REQUEST_ID_CHARS} chars")
    return MemeRequest(query, lat, lon, kind, fmt, request_id)
