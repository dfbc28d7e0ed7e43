"""A fake OpenAI-compatible endpoint speaking the chat completions wire format.

Configurable per test: the caption it answers, a slow mode (answers after `delay_s`
unless released earlier), a queue of error statuses served before any success, and a
raw body that replaces every successful answer (a broken or hostile endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.server import LoopbackServer


class FakeOpenAI(LoopbackServer):
    def __init__(self, caption: str = "When the fake model\nis the only one that gets you") -> None:
        super().__init__()
        self.caption = caption
        self.delay_s = 0.0
        self.errors: deque[int] = deque()
        self.requests: list[dict[str, Any]] = []
        self.raw_answer: bytes | None = None
        self._released = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def calls(self) -> int:
        return len(self.requests)

    def fail_with(self, *statuses: int) -> None:
        self.errors.extend(statuses)

    def slow(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._released.clear()

    def release(self) -> None:
        """Answer every held request now (and later ones at once)."""
        self._released.set()

    async def wait_for_calls(self, count: int) -> None:
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.calls >= count)

    async def close(self) -> None:
        self.release()
        await super().close()

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        return app

    async def _completions(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        async with self._arrived:
            self.requests.append(body)
            self._arrived.notify_all()
        if self.errors:
            status = self.errors.popleft()
            error = {"message": f"fake failure {status}", "type": "server_error", "code": None}
            return web.json_response({"error": error}, status=status)
        if self.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.delay_s)
        if self.raw_answer is not None:
            return web.Response(body=self.raw_answer, content_type="application/json")
        return web.json_response(self._completion(str(body.get("model", "fake"))))

    def _completion(self, model: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.caption, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 12, "total_tokens": 54},
        }
