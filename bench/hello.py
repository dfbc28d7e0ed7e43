"""The framework ceiling: a bare aiohttp handler served exactly like the gateway.

    python -m bench.hello PORT [WORKERS]

Same event loop (uvloop), no access log, SO_REUSEPORT, and as many processes as the
gateway runs, so the gateway's figures can be read against what aiohttp alone does.
"""

from __future__ import annotations

import os
import sys

import uvloop
from aiohttp import web

BODY = b'{"hello": "world"}'


async def hello(_: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def serve(port: int) -> None:
    uvloop.install()
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        reuse_port=True,
        shutdown_timeout=1,
    )


def main() -> None:
    port = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for _ in range(workers - 1):
        if os.fork() == 0:
            break
    serve(port)


if __name__ == "__main__":
    main()
