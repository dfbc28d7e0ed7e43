"""The gateway's aiohttp application: routes and middlewares, nothing else."""

from __future__ import annotations

from aiohttp import web

from services.gateway.routes import accounts, memes, ops, tokens
from services.gateway.routes.context import add_request_id_header, request_id_middleware
from shared import tracing
from shared.metrics import http_metrics_middleware
from shared.web import BODY_TIMEOUT_S, error_middleware, healthz, metrics_handler, readyz


def create_app(max_body_bytes: int, body_timeout_s: float) -> web.Application:
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[
            *tracing.middlewares(),
            request_id_middleware,
            http_metrics_middleware("gateway"),
            error_middleware,
        ],
    )
    app[BODY_TIMEOUT_S] = body_timeout_s
    app.on_response_prepare.append(add_request_id_header)
    app.router.add_get("/memes", memes.get_meme)
    app.router.add_get("/v1/memes", memes.get_meme)
    app.router.add_post("/v1/meme", memes.post_meme)
    app.router.add_post("/v1/memes", memes.post_meme)
    app.router.add_get("/v1/account", accounts.get_own_account)
    app.router.add_get("/v1/tokens", tokens.get_own_tokens)
    app.router.add_post("/v1/accounts", accounts.create_account)
    app.router.add_get("/v1/accounts/{account}", accounts.get_account)
    app.router.add_post("/v1/accounts/{account}/credits", accounts.credit_account)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())
    app.router.add_get("/openapi.json", ops.openapi)
    return app
