"""Script calls of one event-loop step share one pipeline, against real Redis; each
keeps its own answer, error and cancellation."""

from __future__ import annotations

import asyncio
import uuid

from shared.pipelining import AutoPipeline
from shared.stores import Redis

COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
FAILS_ON_ZERO = "if ARGV[1] == '0' then return redis.error_reply('zero') end return ARGV[1]"


async def connections(redis: Redis) -> int:
    return len(await redis.client_list())


async def test_calls_of_one_step_go_as_one_pipeline_on_one_connection(redis: Redis) -> None:
    key = f"pipelined-{uuid.uuid4().hex}"
    scripts = AutoPipeline(redis)
    count = scripts.script(COUNT)
    before = await connections(redis)
    answers = await asyncio.gather(*(count(keys=[key], args=[n]) for n in range(1, 51)))
    assert max(answers) == sum(range(1, 51))
    assert len(set(answers)) == 50
    assert await connections(redis) <= before + 1  # 50 calls, one connection at most


async def test_one_failing_call_does_not_fail_the_others(redis: Redis) -> None:
    fails = AutoPipeline(redis).script(FAILS_ON_ZERO)
    answers = await asyncio.gather(
        *(fails(keys=[], args=[n]) for n in (1, 0, 2)), return_exceptions=True
    )
    assert answers[0] == "1"
    assert answers[2] == "2"
    assert isinstance(answers[1], Exception)
    assert "zero" in str(answers[1])


async def test_a_script_redis_lost_is_loaded_again(redis: Redis) -> None:
    key = f"flushed-{uuid.uuid4().hex}"
    count = AutoPipeline(redis).script(COUNT)
    assert await count(keys=[key], args=[1]) == 1
    await redis.script_flush()
    answers = await asyncio.gather(count(keys=[key], args=[1]), count(keys=[key], args=[1]))
    assert sorted(answers) == [2, 3]


async def test_a_call_cancelled_before_its_step_ends_is_never_sent(redis: Redis) -> None:
    key = f"cancelled-{uuid.uuid4().hex}"
    count = AutoPipeline(redis).script(COUNT)
    call = asyncio.ensure_future(count(keys=[key], args=[5]))
    await asyncio.sleep(0)  # the call is queued for the step's pipeline
    call.cancel()
    assert await count(keys=[key], args=[1]) == 1
    assert call.cancelled()


async def test_commands_share_the_pipeline_with_scripts(redis: Redis) -> None:
    key = f"mixed-{uuid.uuid4().hex}"
    scripts = AutoPipeline(redis)
    count = scripts.script(COUNT)
    await count(keys=[key], args=[0])  # Redis holds the script

    async def read_it() -> str:
        return str(await scripts.call("GET", key))

    counted, read = await asyncio.gather(count(keys=[key], args=[7]), read_it())
    assert counted == 7
    assert read == "7"  # sent after the script, in the same pipeline
