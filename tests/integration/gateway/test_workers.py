"""Several gateway processes on one port share the work and report one set of metrics."""

from __future__ import annotations

import re

import aiohttp

from tests.stack import PARIS, StackFactory


async def test_two_workers_serve_one_port_with_summed_metrics(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(gateway_workers=2)
    headers = await stack.create_account(http, "forked", 40)
    for _ in range(30):
        # A new connection each time, so the kernel spreads them over the workers.
        async with (
            aiohttp.ClientSession() as fresh,
            fresh.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r,
        ):
            assert r.status == 200
    await stack.drained("forked")
    stored = await stack.mongo_account("forked")
    assert stored is not None
    assert (stored["balance"], stored["seq"]) == (10, 30)
    async with http.get(f"{stack.gateway}/metrics") as response:
        text = await response.text()
    charged = re.search(r'^maas_tokens_charged_total\{kind="text"\} (\S+)$', text, re.M)
    assert charged is not None
    assert float(charged.group(1)) == 30
