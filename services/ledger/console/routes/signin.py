"""Sign in by pasting an admin JWT; sign out. The root sends to the dead letters."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from services.ledger.console.deps import console
from shared.errors import ApiError

routes = web.RouteTableDef()


@routes.get("/", name="home")
async def home(_: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/console/dead-letters")


@routes.get("/signin", name="signin")
async def signin_form(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("signin.html", request, {"error": None})


@routes.post("/signin", name="signin-submit")
async def signin(request: web.Request) -> web.Response:
    """No CSRF token exists before sign-in; a browser's Origin header stands in for it."""
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        raise ApiError("forbidden", "sign in from the console's own page")
    token = (await request.post()).get("token")
    token = token.strip() if isinstance(token, str) else ""
    gate = console(request).gate
    try:
        principal = await gate.admin(token)
    except ApiError as error:
        return aiohttp_jinja2.render_template(
            "signin.html", request, {"error": error.message}, status=error.status
        )
    response = web.HTTPSeeOther("/console/dead-letters")
    await gate.open(response, principal)
    raise response


@routes.post("/signout", name="signout")
async def signout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/console/signin")
    await console(request).gate.close(request, response)
    raise response
