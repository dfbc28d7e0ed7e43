"""A meme the client did not get is never paid for."""

from __future__ import annotations

import signal

import aiohttp

from tests.stack import PARIS, StackFactory


async def test_the_meme_service_down_or_frozen_refunds_every_charge(
    make_stack: StackFactory, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(own_meme=True, meme_timeout_s=0.5)
    headers = await stack.create_account(http, "unlucky", 10)
    async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
        assert r.status == 200

    meme = stack.processes["meme"].process
    meme.send_signal(signal.SIGSTOP)  # frozen: the gateway times out
    try:
        for _ in range(3):
            async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
                assert r.status == 504
                body = await r.json()
                assert body["error"]["code"] == "upstream_timeout"
                assert body["error"]["tokens_remaining"] == 9
                assert r.headers["X-Tokens-Remaining"] == "9"
    finally:
        meme.send_signal(signal.SIGCONT)

    stack.kill("meme")  # gone: connection refused
    for _ in range(2):
        async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
            assert r.status == 502
            assert (await r.json())["error"]["tokens_remaining"] == 9

    await stack.drained("unlucky")
    stored = await stack.mongo_account("unlucky")
    assert stored is not None
    assert stored["balance"] == 9
    assert stored["seq"] == 1 + 2 * 5  # each failure is a debit and its refund
    assert (stored["usage"]["calls"], stored["usage"]["tokens_spent"]) == (1, 1)
