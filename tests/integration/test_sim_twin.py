"""The simulation's charge (`Sliced.serve`) is a twin of the real charge script: the same
seeded sequences of charges and grants, replayed on both, give the same answers, the
same slice left, and the same events in the outbox, against real Redis.

In a region the slice is the balance its Redis holds; a grant raises it. The twin answers
at once here (`wait_s=0`): the wait for a grant a refused charge may do is outside the
script."""

from __future__ import annotations

import random
import uuid

import pytest

from shared.accounting.events import Event
from shared.keys import Keys
from shared.stores import Redis, lua_script
from sim.engine import Clock
from sim.network import Network
from sim.world import Answer, Sliced

STEPS = 400
REGION = "r1"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_twin_and_the_charge_script_agree_step_by_step(redis: Redis, seed: int) -> None:
    rng, keys = random.Random(seed), Keys(8)
    account = f"twin-{uuid.uuid4().hex[:8]}"
    shard = keys.shard_of(account)
    charge = redis.register_script(lua_script("charge"))
    await redis.hset(keys.account(account), mapping={"balance": 0, "epoch": 1, "seq": 0})
    world = Sliced(Clock(seed), Network(Clock(seed)), wait_s=0)
    world.open(account, 0, (REGION,))
    slot = world.regions[REGION].slot(account)
    refused = 0

    for step in range(STEPS):
        if rng.random() < 0.15:
            tokens = rng.randint(1, 5)  # a grant lands: the slice grows
            await redis.hincrby(keys.account(account), "balance", tokens)
            slot.tokens += tokens
            continue
        price = rng.choice((1, 2))
        status, balance, _epoch, seq, _ = await charge(
            keys=[keys.account(account), keys.outbox(shard), keys.pending(shard),
                  keys.deadlines(shard)],
            args=[account, price, 0, 0, f"c{step}", "meme:text", f"q{step}", 60_000, ""],
        )  # fmt: skip
        answers: list[Answer] = []
        world.serve(account, REGION, price, answers.append)
        served = [answer.status for answer in answers] == [200]
        assert (status == 0) == served, f"step {step}: the script said {status}"
        refused += not served
        assert (int(balance), int(seq) if served else slot.seq) == (slot.tokens, slot.seq)

    twins = [e for e in world.regions[REGION].outbox if isinstance(e, Event)]
    assert await outbox_of(redis, keys, account) == [(e.amount, e.seq) for e in twins]
    assert min(len(twins), refused) > 50, "the sequence both charged and refused"
    assert int((await redis.hget(keys.account(account), "balance")) or -1) == slot.tokens


async def outbox_of(redis: Redis, keys: Keys, account: str) -> list[tuple[int, int]]:
    """(tokens, seq) of the account's events in its shard's outbox, in order."""
    entries = await redis.xrange(keys.outbox(keys.shard_of(account))) or []
    return [(int(f["n"]), int(f["s"])) for _, f in entries if f and f.get("a") == account]
