"""Libraries that log every request they make stay below INFO."""

from __future__ import annotations

import logging

from shared.logging import configure_logging


def test_the_ai_clients_per_request_lines_are_not_written_at_info() -> None:
    """Found by `make bench`: the meme service wrote 295 "HTTP Request" lines (httpx2,
    under the OpenAI client) for about 1,350 AI memes."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("meme", "INFO")
        for name in ("httpx2", "httpx", "openai"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger("services.meme").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
