"""The OpenAPI 3.1 document of the gateway, built from the same constants as the code.

`python -m services.gateway.openapi > services/gateway/openapi.json` refreshes the
checked-in copy that the gateway serves; a test fails when the two differ.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from services.gateway.domain.params import (
    LAT_LIMIT,
    LON_LIMIT,
    coordinate_pattern,
    query_pattern,
    ranges_class,
)
from shared.contract import FORMATS, KINDS, MAX_QUERY_CHARS, MAX_TOKENS_PER_CALL
from shared.errors import STATUS_BY_CODE
from shared.validation import ACCOUNT_ID as ACCOUNT_ID_PATTERN
from shared.validation import MAX_CREDIT_REASON_CHARS, SQS_RANGES

Schema = dict[str, Any]

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": sorted(STATUS_BY_CODE)},
                "message": {"type": "string"},
            },
            "additionalProperties": True,
        }
    },
}

LOCATION: Schema = {
    "type": ["object", "null"],
    "properties": {
        "name": {"type": "string"},
        "admin1": {"type": "string"},
        "country": {"type": "string"},
        "lat": {"type": "number"},
        "lon": {"type": "number"},
        "distance_km": {"type": "number"},
        "source": {"type": "string"},
    },
    "required": ["name", "admin1", "country", "lat", "lon"],
}

MEME: Schema = {
    "type": "object",
    "required": ["id", "kind", "text", "location", "query", "tokens_charged", "tokens_remaining"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "text": {"type": "string"},
        "location": {"$ref": "#/components/schemas/Location"},
        "query": {"type": "string"},
        "tokens_charged": {"type": "integer", "minimum": 1},
        "tokens_remaining": {"type": "integer"},
    },
}

USAGE: Schema = {
    "type": "object",
    "required": ["calls", "tokens_spent"],
    "properties": {
        "calls": {"type": "integer"},
        "tokens_spent": {"type": "integer"},
        "by_kind": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}

ACCOUNT_ID: Schema = {"type": "string", "pattern": f"^{ACCOUNT_ID_PATTERN.pattern}$"}

PAIRING = (
    "Give lat and lon together, or neither: one without the other is a 400 "
    "(invalid_params). Plain decimals only, up to 15 decimals."
)
QUERY: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_QUERY_CHARS,
    "pattern": query_pattern(),
    "description": (
        f"The topic of the meme: at most {MAX_QUERY_CHARS} characters, not blank; "
        "surrounding whitespace is trimmed; no control or invisible formatting characters."
    ),
}


def coordinate_parameter(name: str, what: str, limit: int) -> Schema:
    return {
        "name": name,
        "in": "query",
        "description": f"{what} in decimal degrees, -{limit}..{limit}. {PAIRING}",
        "schema": {"type": "string", "pattern": coordinate_pattern(limit)},
    }


def coordinate(what: str, limit: int) -> Schema:
    return {
        "type": ["number", "string"],
        "minimum": -limit,
        "maximum": limit,
        "pattern": coordinate_pattern(limit),
        "description": f"{what} in decimal degrees, -{limit}..{limit}, a number or a string",
    }


MEME_PARAMETERS: list[Schema] = [
    coordinate_parameter("lat", "Latitude", LAT_LIMIT),
    coordinate_parameter("lon", "Longitude", LON_LIMIT),
    {"name": "query", "in": "query", "required": True, "schema": QUERY},
    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(KINDS)}},
    {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(FORMATS)}},
]

MEME_BODY: Schema = {
    "type": "object",
    "required": ["query"],
    "description": "lat goes with lon or lng (the reference implementation's name), not both.",
    "properties": {
        "lat": coordinate("Latitude", LAT_LIMIT),
        "lon": coordinate("Longitude", LON_LIMIT),
        "lng": coordinate("Longitude (another name for lon)", LON_LIMIT),
        "query": QUERY,
        "kind": {"type": "string", "enum": list(KINDS)},
        "format": {"type": "string", "enum": list(FORMATS)},
    },
    "dependentRequired": {"lon": ["lat"], "lng": ["lat"]},
    "dependentSchemas": {
        "lat": {"anyOf": [{"required": ["lon"]}, {"required": ["lng"]}]},
        "lon": {"not": {"required": ["lng"]}},
    },
}


def error(description: str, headers: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def complement(ranges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """The code points outside `ranges` (sorted, apart), as ranges.

    A schema says "none of these" as a negated class: test-data generators draw from it
    quickly, where a class of every allowed range is slow to draw from.
    """
    gaps, start = [], 0
    for first, last in ranges:
        if first > start:
            gaps.append((start, first - 1))
        start = last + 1
    return gaps + ([(start, sys.maxunicode)] if start <= sys.maxunicode else [])


# Surrogates are left out: no JSON text carries a lone one (the parser refuses it first),
# and test-data generators refuse a pattern that names them.
NOT_SQS = [(first, last) for first, last in complement(SQS_RANGES) if first != 0xD800]


def json_body(schema: Schema) -> Schema:
    """A required JSON request body."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def header(description: str, kind: str = "string") -> Schema:
    return {"description": description, "schema": {"type": kind}}


UNAUTHORIZED = error(
    "Missing, invalid or expired token",
    {"WWW-Authenticate": header("Bearer challenge")},
)
RETRY_AFTER = {"Retry-After": header("Seconds to wait", "integer")}
COMMON_ERRORS: dict[str, Schema] = {
    "401": UNAUTHORIZED,
    "405": error("Method not allowed"),
    "500": error("Internal error"),
    "503": error("A store behind the service (Redis, MongoDB) is unavailable; retry", RETRY_AFTER),
}


def meme_responses() -> dict[str, Schema]:
    meme_headers = {
        "X-Request-ID": header("The request id, also the meme id"),
        "X-Tokens-Remaining": header("Balance after this request", "integer"),
    }
    return {
        "200": {
            "description": "The meme (JSON, or PNG with format=png)",
            "headers": meme_headers,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Meme"}},
                "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
            },
        },
        "400": error("Invalid parameters; nothing was charged"),
        **COMMON_ERRORS,
        "402": error("Not enough tokens; the error carries the balance and the price"),
        "403": error("AI without the 'ai' role, or no account for this token"),
        "413": error("Body too large"),
        "429": error("Rate limited", {"Retry-After": header("Seconds to wait", "integer")}),
        "502": error("The meme service failed; the charge was refunded"),
        "503": error(
            "AI unavailable, the meme service is down, or this gateway is shutting down "
            "(refunded); or balances are being restored (nothing charged); or a store is "
            "unavailable (not charged for a meme not delivered)",
            RETRY_AFTER,
        ),
        "504": error("The meme service timed out; refunded"),
    }


def admin_errors() -> dict[str, Schema]:
    return {**COMMON_ERRORS, "403": error("The token lacks the 'admin' role")}


def own_account_errors() -> dict[str, Schema]:
    return {**COMMON_ERRORS, "403": error("No account for this token")}


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
ACCOUNT_PATH = {"name": "account", "in": "path", "required": True, "schema": ACCOUNT_ID}
TOKENS_PER_CALL = {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_PER_CALL}
NEW_ACCOUNT_BODY = {
    "type": "object",
    "required": ["id", "tokens"],
    "properties": {"id": ACCOUNT_ID, "tokens": {**TOKENS_PER_CALL, "minimum": 0}},
}
CREDIT_BODY = {
    "type": "object",
    "required": ["amount"],
    "properties": {
        "amount": TOKENS_PER_CALL,
        "reason": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CREDIT_REASON_CHARS,
            "pattern": f"^[^{ranges_class(NOT_SQS)}]+$",
            "description": "Any characters an SQS message can carry: no control character "
            "but tab and newlines, no U+FFFE or U+FFFF",
        },
    },
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
}
INTEGER = {"type": "integer"}
STRING = {"type": "string"}
SCHEMAS: dict[str, Schema] = {
    "Error": ERROR,
    "Location": LOCATION,
    "Meme": MEME,
    "MemeBody": MEME_BODY,
    "Usage": USAGE,
    "OwnAccount": {
        "type": "object",
        "required": ["id", "tokens", "roles", "usage"],
        "properties": {
            "id": STRING,
            "tokens": INTEGER,
            "roles": {"type": "array", "items": STRING},
            "usage": {"$ref": "#/components/schemas/Usage"},
        },
    },
    "Tokens": {"type": "object", "required": ["tokens"], "properties": {"tokens": INTEGER}},
    "NewAccount": {
        "type": "object",
        "required": ["id", "tokens"],
        "properties": {"id": STRING, "tokens": INTEGER},
    },
    "Account": {
        "type": "object",
        "required": ["id", "tokens", "ledger", "usage"],
        "properties": {
            "id": STRING,
            "tokens": INTEGER,
            "ledger": {
                "type": "object",
                "required": ["balance", "epoch", "seq"],
                "properties": {"balance": INTEGER, "epoch": INTEGER, "seq": INTEGER},
            },
            "usage": {"$ref": "#/components/schemas/Usage"},
            "regions": {
                "type": "object",
                "description": "With regions (MAAS_REGION): each region's slice of the "
                "account's tokens (this region's live, the others' as the ledger knows "
                "them); `ledger` is then the account's pool, granted to no region.",
                "additionalProperties": INTEGER,
            },
        },
    },
    "Credit": {
        "type": "object",
        "required": ["event_id", "tokens"],
        "properties": {"event_id": STRING, "tokens": INTEGER},
    },
}


def answer(description: str, schema: str) -> Schema:
    """A JSON answer whose body is one of the document's schemas."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def operation(operation_id: str, summary: str, responses: Schema, **more: Any) -> Schema:
    """An operation that needs a bearer token."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": BEARER,
        **more,
        "responses": responses,
    }


def document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MaaS — Memes as a Service",
            "version": "1.0.0",
            "description": "Metered memes: text memes cost 1 token, AI memes 2.",
        },
        "paths": {**meme_paths(), **account_paths(), **operations_paths()},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": SCHEMAS,
        },
    }


def meme_paths() -> Schema:
    def get(operation_id: str) -> Schema:
        summary = "A meme about a topic at a place"
        return operation(operation_id, summary, meme_responses(), parameters=MEME_PARAMETERS)

    def post(operation_id: str) -> Schema:
        summary = "A meme, with the parameters in a JSON body"
        body = json_body({"$ref": "#/components/schemas/MemeBody"})
        return operation(operation_id, summary, meme_responses(), requestBody=body)

    return {
        "/memes": {"get": get("getMeme")},
        "/v1/memes": {"get": get("getMemeV1"), "post": post("postMemes")},
        "/v1/meme": {"post": post("postMeme")},
    }


def account_paths() -> Schema:
    own = own_account_errors()
    return {
        "/v1/account": {
            "get": operation(
                "getOwnAccount",
                "The caller's balance, roles and usage",
                {"200": answer("The account", "OwnAccount"), **own},
            )
        },
        "/v1/tokens": {
            "get": operation(
                "getOwnTokens",
                "The caller's balance",
                {"200": answer("The live balance", "Tokens"), **own},
            )
        },
        "/v1/accounts": {
            "post": operation(
                "createAccount",
                "Create an account (admin)",
                {
                    "201": answer("Created", "NewAccount"),
                    "400": error("Invalid body"),
                    "409": error("The account exists"),
                    "413": error("Body too large"),
                    **admin_errors(),
                },
                requestBody=json_body(NEW_ACCOUNT_BODY),
            )
        },
        "/v1/accounts/{account}": {
            "get": operation(
                "getAccount",
                "An account with its live and ledger balances (admin)",
                {
                    "200": answer("The account", "Account"),
                    "400": error("Not a valid account id"),
                    "404": error("No such account"),
                    **admin_errors(),
                },
                parameters=[ACCOUNT_PATH],
            )
        },
        "/v1/accounts/{account}/credits": {
            "post": operation(
                "creditAccount",
                "Credit purchased tokens, idempotently (admin)",
                {
                    "202": answer("Credited, or the first answer for this key", "Credit"),
                    "400": error("Invalid body or Idempotency-Key"),
                    "404": error("No such account"),
                    "409": error(
                        "The key was used with a different body, or the credit would "
                        "take the balance over its limit (balance_limit)"
                    ),
                    "413": error("Body too large"),
                    **admin_errors(),
                    "503": error(
                        "Not durable yet (SQS unreachable), or a store is unavailable; retry "
                        "with the same key",
                        RETRY_AFTER,
                    ),
                },
                parameters=[ACCOUNT_PATH, IDEMPOTENCY_KEY],
                requestBody=json_body(CREDIT_BODY),
            )
        },
    }


def operations_paths() -> Schema:
    def unauthenticated(operation_id: str, summary: str, description: str, body: Schema) -> Schema:
        return {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "responses": {"200": {"description": description, "content": body}},
            }
        }

    return {
        "/healthz": {"get": _plain("Liveness", "getHealth")},
        "/readyz": {"get": _plain("Readiness of Redis, SQS and the meme service", "getReady")},
        "/metrics": unauthenticated(
            "getMetrics",
            "Prometheus metrics",
            "Prometheus text format",
            {"text/plain": {"schema": STRING}},
        ),
        "/openapi.json": unauthenticated(
            "getOpenApi",
            "This document",
            "OpenAPI 3.1",
            {"application/json": {"schema": {"type": "object"}}},
        ),
    }


def _plain(summary: str, operation_id: str) -> Schema:
    return {
        "operationId": operation_id,
        "summary": summary,
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "503": {
                "description": "Not ready",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        },
    }


def render() -> bytes:
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2) + b"\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(render())
