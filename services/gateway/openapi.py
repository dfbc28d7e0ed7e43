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
COMMON_ERRORS: dict[str, Schema] = {
    "401": UNAUTHORIZED,
    "405": error("Method not allowed"),
    "500": error("Internal error"),
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
            "(refunded); or balances are being restored (nothing charged)",
            {"Retry-After": header("Seconds to wait", "integer")},
        ),
        "504": error("The meme service timed out; refunded"),
    }


def admin_errors() -> dict[str, Schema]:
    return {**COMMON_ERRORS, "403": error("The token lacks the 'admin' role")}


def own_account_errors() -> dict[str, Schema]:
    return {**COMMON_ERRORS, "403": error("No account for this token")}


def document() -> Schema:
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    meme_get = {
        "summary": "A meme about a topic at a place",
        "security": bearer,
        "parameters": MEME_PARAMETERS,
        "responses": meme_responses(),
    }
    meme_post = {
        "summary": "A meme, with the parameters in a JSON body",
        "security": bearer,
        "requestBody": json_body({"$ref": "#/components/schemas/MemeBody"}),
        "responses": meme_responses(),
    }
    account_path = {"name": "account", "in": "path", "required": True, "schema": ACCOUNT_ID}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MaaS — Memes as a Service",
            "version": "1.0.0",
            "description": "Metered memes: text memes cost 1 token, AI memes 2.",
        },
        "paths": {
            "/memes": {"get": {**meme_get, "operationId": "getMeme"}},
            "/v1/memes": {
                "get": {**meme_get, "operationId": "getMemeV1"},
                "post": {**meme_post, "operationId": "postMemes"},
            },
            "/v1/meme": {"post": {**meme_post, "operationId": "postMeme"}},
            "/v1/account": {
                "get": {
                    "operationId": "getOwnAccount",
                    "summary": "The caller's balance, roles and usage",
                    "security": bearer,
                    "responses": {
                        "200": {
                            "description": "The account",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/OwnAccount"}
                                }
                            },
                        },
                        **own_account_errors(),
                    },
                }
            },
            "/v1/tokens": {
                "get": {
                    "operationId": "getOwnTokens",
                    "summary": "The caller's balance",
                    "security": bearer,
                    "responses": {
                        "200": {
                            "description": "The live balance",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Tokens"}
                                }
                            },
                        },
                        **own_account_errors(),
                    },
                }
            },
            "/v1/accounts": {
                "post": {
                    "operationId": "createAccount",
                    "summary": "Create an account (admin)",
                    "security": bearer,
                    "requestBody": json_body(
                        {
                            "type": "object",
                            "required": ["id", "tokens"],
                            "properties": {
                                "id": ACCOUNT_ID,
                                "tokens": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "maximum": MAX_TOKENS_PER_CALL,
                                },
                            },
                        }
                    ),
                    "responses": {
                        "201": {
                            "description": "Created",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/NewAccount"}
                                }
                            },
                        },
                        "400": error("Invalid body"),
                        "409": error("The account exists"),
                        "413": error("Body too large"),
                        **admin_errors(),
                    },
                }
            },
            "/v1/accounts/{account}": {
                "get": {
                    "operationId": "getAccount",
                    "summary": "An account with its live and ledger balances (admin)",
                    "security": bearer,
                    "parameters": [account_path],
                    "responses": {
                        "200": {
                            "description": "The account",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Account"}
                                }
                            },
                        },
                        "400": error("Not a valid account id"),
                        "404": error("No such account"),
                        **admin_errors(),
                    },
                }
            },
            "/v1/accounts/{account}/credits": {
                "post": {
                    "operationId": "creditAccount",
                    "summary": "Credit purchased tokens, idempotently (admin)",
                    "security": bearer,
                    "parameters": [
                        account_path,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                        },
                    ],
                    "requestBody": json_body(
                        {
                            "type": "object",
                            "required": ["amount"],
                            "properties": {
                                "amount": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": MAX_TOKENS_PER_CALL,
                                },
                                "reason": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": MAX_CREDIT_REASON_CHARS,
                                    "pattern": f"^[^{ranges_class(NOT_SQS)}]+$",
                                    "description": "Any characters an SQS message "
                                    "can carry: no control character but tab and "
                                    "newlines, no U+FFFE or U+FFFF",
                                },
                            },
                        }
                    ),
                    "responses": {
                        "202": {
                            "description": "Credited, or the first answer for this key",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Credit"}
                                }
                            },
                        },
                        "400": error("Invalid body or Idempotency-Key"),
                        "404": error("No such account"),
                        "409": error(
                            "The key was used with a different body, or the credit would "
                            "take the balance over its limit (balance_limit)"
                        ),
                        "413": error("Body too large"),
                        "503": error(
                            "Not durable yet (SQS unreachable); retry with the same key",
                            {"Retry-After": header("Seconds to wait", "integer")},
                        ),
                        **admin_errors(),
                    },
                }
            },
            "/healthz": {"get": _plain("Liveness", "getHealth")},
            "/readyz": {"get": _plain("Readiness of Redis, SQS and the meme service", "getReady")},
            "/metrics": {
                "get": {
                    "operationId": "getMetrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "Error": ERROR,
                "Location": LOCATION,
                "Meme": MEME,
                "MemeBody": MEME_BODY,
                "Usage": USAGE,
                "OwnAccount": {
                    "type": "object",
                    "required": ["id", "tokens", "roles", "usage"],
                    "properties": {
                        "id": {"type": "string"},
                        "tokens": {"type": "integer"},
                        "roles": {"type": "array", "items": {"type": "string"}},
                        "usage": {"$ref": "#/components/schemas/Usage"},
                    },
                },
                "Tokens": {
                    "type": "object",
                    "required": ["tokens"],
                    "properties": {"tokens": {"type": "integer"}},
                },
                "NewAccount": {
                    "type": "object",
                    "required": ["id", "tokens"],
                    "properties": {"id": {"type": "string"}, "tokens": {"type": "integer"}},
                },
                "Account": {
                    "type": "object",
                    "required": ["id", "tokens", "ledger", "usage"],
                    "properties": {
                        "id": {"type": "string"},
                        "tokens": {"type": "integer"},
                        "ledger": {
                            "type": "object",
                            "required": ["balance", "epoch", "seq"],
                            "properties": {
                                "balance": {"type": "integer"},
                                "epoch": {"type": "integer"},
                                "seq": {"type": "integer"},
                            },
                        },
                        "usage": {"$ref": "#/components/schemas/Usage"},
                    },
                },
                "Credit": {
                    "type": "object",
                    "required": ["event_id", "tokens"],
                    "properties": {"event_id": {"type": "string"}, "tokens": {"type": "integer"}},
                },
            },
        },
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
