"""The console's aiohttp sub-application: templates, the sign-in gate, HTML errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from services.ledger.console.deps import SESSION, console
from services.ledger.console.gate import Gate
from services.ledger.console.routes import books, dead_letters, pipeline, signin
from shared.accounting.events import signed_amount
from shared.errors import ApiError
from shared.web import Handler

HERE = Path(__file__).parent
PUBLIC_ROUTES = {"signin", "signin-submit", "static"}
# No script may run, even if a value ever escaped the templates' escaping; no framing, no
# caching of pages that show account data, no referrer carrying message ids elsewhere
# (same-origin, not no-referrer: that would make the sign-in form's Origin "null").
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@web.middleware
async def gate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sign-in for every page, CSRF for every form, and errors as HTML pages."""
    response = await gated(request, handler)
    response.headers.update(SECURITY_HEADERS)
    return response


async def gated(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.match_info.route.name not in PUBLIC_ROUTES:
            session = await console(request).gate.session(request)
            if session is None:
                if request.method in ("GET", "HEAD"):
                    raise web.HTTPSeeOther("/console/signin")
                raise ApiError("unauthorized", "sign in with an admin token first")
            request[SESSION] = session
            if request.method == "POST":
                await Gate.check_csrf(request, session)
        return await handler(request)
    except ApiError as error:
        return error_page(request, error.status, error.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_page(request, exc.status, exc.reason)


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return aiohttp_jinja2.render_template(
        "error.html", request, {"status": status, "message": message}, status=status
    )


async def page_context(request: web.Request) -> dict[str, Any]:
    session = request.get(SESSION)
    return {
        "operator": session.principal if session else None,
        "csrf": session.csrf if session else "",
        "path": request.path,
    }


def build_console() -> web.Application:
    app = web.Application(middlewares=[gate_middleware])
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        context_processors=[page_context],
    )
    env.globals["signed_amount"] = signed_amount
    for module in (signin, dead_letters, books, pipeline):
        app.add_routes(module.routes)
    app.router.add_static("/static", HERE / "static", name="static")
    return app
