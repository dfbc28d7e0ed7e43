"""A trace collector that only accepts: OTLP/HTTP on loopback, for `make bench`.

    python -m bench.otlp_sink PORT

It stands in for Jaeger or an OpenTelemetry Collector so the bench measures what
tracing costs the services (spans made, batched, encoded and sent), not a backend. It
answers each export with an empty `ExportTraceServiceResponse` (zero bytes of protobuf).
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web


async def export(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")


def main(port: int) -> None:
    uvloop.install()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", export)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
