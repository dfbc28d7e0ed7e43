"""Schemathesis hooks for the gateway: what the OpenAPI document says only in words."""

from __future__ import annotations

from typing import Any

import schemathesis

Case = schemathesis.Case[Any]
COORDINATES = ("lat", "lon")


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: Case) -> Case:
    """`lat` and `lon` go together as query parameters (their descriptions say so).

    A query string has no schema form for that rule, so a generated query with one of
    them gets the other, valid. Invalid values stay invalid, so negative cases still are.
    """
    query = case.query
    if query:
        given = [name for name in COORDINATES if name in query]
        if len(given) == 1:
            (missing,) = set(COORDINATES) - set(given)
            query[missing] = "0"
    return case
