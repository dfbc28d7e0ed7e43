"""Property-based run of schemathesis against the live gateway and its OpenAPI document.

Every check runs (positive and negative data acceptance included): the document says
exactly what the server accepts. Several seeds, each with a bounded number of examples.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.stack import ServiceStack

GENEROUS = {"default": {"rate": 100_000, "burst": 100_000}}
SEEDS = (7, 20261128, 4242)
HOOKS = "tests.integration.gateway.schemathesis_hooks"


@pytest.fixture(scope="module")
async def fuzzed(
    servers_dir: Path, sqs_endpoint: str, mongo_url: str
) -> AsyncIterator[tuple[str, str, Path]]:
    """A gateway with AI memes and a funded `ai` + `admin` account: its URL, token, dir."""
    async with FakeOpenAI() as ai:
        stack = ServiceStack(
            servers_dir / "stacks",
            sqs_endpoint,
            mongo_url,
            {"rate_limits": GENEROUS, "openai_base_url": ai.url, "openai_api_key": "fake-key"},
        )
        await stack.start()
        try:
            async with aiohttp.ClientSession() as http:
                await stack.create_account(http, "fuzzer", 1_000_000)
            yield stack.gateway, stack.token("fuzzer", ("admin", "ai")), stack.run_dir
        finally:
            await stack.close()


@pytest.mark.parametrize("seed", SEEDS)
async def test_the_live_gateway_keeps_its_openapi_promises(
    fuzzed: tuple[str, str, Path], seed: int
) -> None:
    gateway, token, run_dir = fuzzed
    st = Path(sys.executable).with_name("st")
    process = await asyncio.create_subprocess_exec(
        str(st), "run", f"{gateway}/openapi.json",
        "--checks", "all",
        "--max-examples", "40",
        "--seed", str(seed),
        "--header", f"Authorization: Bearer {token}",
        "--suppress-health-check", "all",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=run_dir,  # its example database stays out of the work tree
        env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(Path.cwd())},
    )  # fmt: skip
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-8000:]
    assert "passed" in report.lower()
