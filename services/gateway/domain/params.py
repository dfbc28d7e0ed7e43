"""Validation of meme requests: raw query strings or JSON values -> a typed request.

Pure: no I/O. Every rejection is an `ApiError("invalid_params")` naming the field, so
a rejected request never reaches the charging step. The OpenAPI document states the
same rules (`coordinate_pattern`, `query_pattern`); schemathesis checks that the two agree.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from shared.contract import FORMATS, KINDS, MAX_QUERY_CHARS, ImageFormat, Kind
from shared.errors import ApiError

# Plain decimals only: no exponents (1e999), hex, inf/nan, or degree-minute-second forms.
_DECIMAL = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{1,15})?|\.\d{1,15})")
# Characters a query may not hold: controls and invisible formatting (zero-width, bidi
# overrides). Surrogates never arrive: JSON bodies with one are rejected, and URLs decode
# invalid UTF-8 to U+FFFD.
FORBIDDEN_CATEGORIES = ("Cc", "Cf")
LAT_LIMIT, LON_LIMIT = 90, 180


@dataclass(frozen=True, slots=True)
class MemeRequest:
    query: str
    lat: float | None
    lon: float | None
    kind: Kind | None
    format: ImageFormat


def invalid(field: str, message: str) -> ApiError:
    return ApiError("invalid_params", f"{field}: {message}", field=field)


def parse_coordinate(field: str, raw: Any, limit: int) -> float:
    if isinstance(raw, bool):
        raise invalid(field, "must be a decimal number")
    if isinstance(raw, int | float):
        in_range = math.isfinite(raw) and -limit <= raw <= limit
    elif isinstance(raw, str) and _DECIMAL.fullmatch(raw):
        in_range = -limit <= Decimal(raw) <= limit  # exact: 90.000000000000001 is out
    else:
        raise invalid(field, "must be a plain decimal number such as 40.7306")
    if not in_range:
        raise invalid(field, f"must be between -{limit} and {limit}")
    return float(raw)


def parse_query(raw: Any) -> str:
    if not isinstance(raw, str):
        raise invalid("query", "is required and must be a string")
    if len(raw) > MAX_QUERY_CHARS:
        raise invalid("query", f"must be at most {MAX_QUERY_CHARS} characters")
    query = raw.strip()
    if not query:
        raise invalid("query", "must not be empty")
    if any(unicodedata.category(ch) in FORBIDDEN_CATEGORIES for ch in query):
        raise invalid("query", "must not contain control characters")
    return query


def parse_choice(field: str, values: dict[str, Any], choices: tuple[str, ...]) -> str | None:
    if field not in values:
        return None
    if values[field] not in choices:
        raise invalid(field, f"must be one of {', '.join(choices)}")
    return str(values[field])


def parse_meme_request(values: dict[str, Any]) -> MemeRequest:
    """Validate a meme request from query parameters or a JSON body (`lng` = `lon`)."""
    if "lon" in values and "lng" in values:
        raise invalid("lng", "give lon or lng, not both")
    lon_field = "lng" if "lng" in values else "lon"
    if ("lat" in values) != (lon_field in values):
        raise invalid(
            lon_field if "lat" in values else "lat",
            "lat and lon go together: give both or neither",
        )
    lat = lon = None
    if "lat" in values:
        lat = parse_coordinate("lat", values["lat"], LAT_LIMIT)
        lon = parse_coordinate("lon", values[lon_field], LON_LIMIT)
    return MemeRequest(
        query=parse_query(values.get("query")),
        lat=lat,
        lon=lon,
        kind=parse_choice("kind", values, KINDS),  # type: ignore[arg-type]
        format=parse_choice("format", values, FORMATS) or "json",  # type: ignore[arg-type]
    )


def coordinate_pattern(limit: int) -> str:
    """`_DECIMAL` within ±`limit` (90 or 180), as a regular expression for the schema."""
    below = {90: "0?[0-8]?[0-9]", 180: "(?:1[0-7][0-9]|0?[0-9]?[0-9])"}[limit]
    at_limit = f"0?{limit}" if limit < 100 else str(limit)  # at most three digits
    fraction = r"(?:\.[0-9]{1,15})"
    return rf"^[+-]?(?:{at_limit}(?:\.0{{1,15}})?|{below}{fraction}?|{fraction})$"


@cache
def query_pattern() -> str:
    """What `parse_query` accepts, as a regular expression for the schema.

    Surrounding whitespace (stripped), then at least one character that is neither
    whitespace nor forbidden, and no forbidden character anywhere in between.
    """
    spaces, forbidden = [], []
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if ch.isspace():
            spaces.append(code)
        if unicodedata.category(ch) in FORBIDDEN_CATEGORIES:
            forbidden.append(code)
    space, bad = _char_class(spaces), _char_class(forbidden)
    solid = f"[^{space}{bad}]"
    return f"^[{space}]*{solid}(?:[^{bad}]*{solid})?[{space}]*$"


def _char_class(codes: list[int]) -> str:
    """Code points as the inside of a regex character class."""
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return ranges_class([(first, last) for first, last in ranges])


def ranges_class(ranges: Iterable[tuple[int, int]]) -> str:
    """Ranges of code points as the inside of a regex character class."""
    return "".join(
        _escape(first) if first == last else f"{_escape(first)}-{_escape(last)}"
        for first, last in ranges
    )


def _escape(code: int) -> str:
    """`\\uXXXX` in the basic plane; beyond it the character itself, which both Python's
    and ECMA-262's regular expressions read as one code point."""
    return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)
