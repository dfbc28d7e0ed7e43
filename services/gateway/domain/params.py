"""Validation of meme requests: raw query strings or JSON values -> a typed request.

Pure: no I/O. Every rejection is an `ApiError("invalid_params")` naming the field, so
a rejected request never reaches the charging step.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from shared.contract import FORMATS, KINDS, MAX_QUERY_CHARS, ImageFormat, Kind
from shared.errors import ApiError

# Plain decimals only: no exponents (1e999), hex, inf/nan, or degree-minute-second forms.
_DECIMAL = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{1,15})?|\.\d{1,15})")


@dataclass(frozen=True, slots=True)
class MemeRequest:
    query: str
    lat: float | None
    lon: float | None
    kind: Kind | None
    format: ImageFormat


def invalid(field: str, message: str) -> ApiError:
    return ApiError("invalid_params", f"{field}: {message}", field=field)


def parse_coordinate(field: str, raw: Any, limit: float) -> float:
    if isinstance(raw, bool):
        raise invalid(field, "must be a decimal number")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()):
        value = float(raw.strip())
    else:
        raise invalid(field, "must be a plain decimal number such as 40.7306")
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise invalid(field, f"must be between -{limit:g} and {limit:g}")
    return value


def parse_query(raw: Any) -> str:
    if not isinstance(raw, str):
        raise invalid("query", "is required and must be a string")
    query = raw.strip()
    if not query:
        raise invalid("query", "must not be empty")
    if len(query) > MAX_QUERY_CHARS:
        raise invalid("query", f"must be at most {MAX_QUERY_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in query):
        raise invalid("query", "must not contain control characters")
    return query


def parse_choice(field: str, raw: Any, choices: tuple[str, ...]) -> str | None:
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise invalid(field, f"must be one of {', '.join(choices)}")
    return str(raw)


def parse_meme_request(values: dict[str, Any]) -> MemeRequest:
    """Validate a meme request from query parameters or a JSON body (`lng` = `lon`)."""
    raw_lat = values.get("lat")
    raw_lon = values.get("lon", values.get("lng"))
    if (raw_lat is None) != (raw_lon is None):
        raise invalid(
            "lat" if raw_lat is None else "lon", "lat and lon go together: give both or neither"
        )
    lat = lon = None
    if raw_lat is not None:
        lat = parse_coordinate("lat", raw_lat, 90)
        lon = parse_coordinate("lon", raw_lon, 180)
    kind = parse_choice("kind", values.get("kind"), KINDS)
    fmt = parse_choice("format", values.get("format"), FORMATS) or "json"
    return MemeRequest(
        query=parse_query(values.get("query")),
        lat=lat,
        lon=lon,
        kind=kind,  # type: ignore[arg-type]
        format=fmt,  # type: ignore[arg-type]
    )
