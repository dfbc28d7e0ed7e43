"""Per-request context: the request id every answer and log line carries."""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from shared.logging import request_id_var
from shared.web import Handler

REQUEST_ID = "request_id"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reuse a well-formed client `X-Request-ID` so traces join up; else make one."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _CLIENT_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    try:
        return await handler(request)
    finally:
        request_id_var.reset(token)


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, also those a handler writes itself before it returns."""
    if REQUEST_ID in request:
        response.headers["X-Request-ID"] = request[REQUEST_ID]
