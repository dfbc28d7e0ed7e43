"""The OpenAPI document (health and readiness are shared/web.py's)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

OPENAPI = (resources.files("services.gateway") / "openapi.json").read_bytes()


async def openapi(_: web.Request) -> web.Response:
    return web.Response(body=OPENAPI, content_type="application/json")
