"""Error codes of the public API and the HTTP status each one maps to.

Domain code raises `ApiError` with a code; the edges render it as
``{"error": {"code", "message", ...}}``. One table, so a code always means one status.
"""

from __future__ import annotations

from typing import Any

STATUS_BY_CODE: dict[str, int] = {
    "invalid_params": 400,
    "unauthorized": 401,
    "insufficient_tokens": 402,
    "forbidden": 403,
    "unknown_account": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "account_exists": 409,
    "idempotency_conflict": 409,
    "balance_limit": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "internal_error": 500,
    "upstream_error": 502,
    "upstream_unavailable": 503,
    "ai_unavailable": 503,
    "shutting_down": 503,
    "tokens_in_transit": 503,
    "upstream_timeout": 504,
}


class ApiError(Exception):
    """An answer to the client that is not a success, with a stable machine code."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS_BY_CODE[code]
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}
