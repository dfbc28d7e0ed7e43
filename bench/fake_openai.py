"""A loopback OpenAI-compatible chat completions endpoint that answers after a delay.

    python -m bench.fake_openai PORT DELAY_S

A process of its own, so its CPU is measured apart from the load generator and it never
competes with the bench's own event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

import uvloop
from aiohttp import web

CAPTION = "When the upstream model\ntakes half a second to be funny"


def build(delay_s: float) -> web.Application:
    ids = itertools.count(1)

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(delay_s)
        return web.json_response(
            {
                "id": f"chatcmpl-bench-{next(ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(body.get("model", "fake")),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": CAPTION, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 42, "completion_tokens": 12, "total_tokens": 54},
            }
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    port, delay_s = int(sys.argv[1]), float(sys.argv[2])
    uvloop.install()
    web.run_app(build(delay_s), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
