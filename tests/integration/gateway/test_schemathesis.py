"""Property-based run of schemathesis against the live gateway and its OpenAPI document."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from tests.fakes.openai_server import FakeOpenAI
from tests.stack import ServiceStack, StackFactory

GENEROUS = {"default": {"rate": 100_000, "burst": 100_000}}
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


async def test_the_live_gateway_keeps_its_openapi_promises(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    async with FakeOpenAI() as ai:
        stack = await make_stack(
            rate_limits=GENEROUS, openai_base_url=ai.url, openai_api_key="fake-key"
        )
        await stack.create_account(http, "fuzzer", 1_000_000)
        report = await fuzz(stack)
    assert "passed" in report.lower()


async def fuzz(stack: ServiceStack) -> str:
    st = Path(sys.executable).with_name("st")
    process = await asyncio.create_subprocess_exec(
        str(st), "run", f"{stack.gateway}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", "40",
        "--seed", "20261128",
        "--header", f"Authorization: Bearer {stack.token('fuzzer', ('admin', 'ai'))}",
        "--suppress-health-check", "all",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=stack.run_dir,  # its example database stays out of the work tree
    )  # fmt: skip
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    return report
