"""The nemesis's rollback is a real one: Redis comes back with the snapshot's data and
nothing written since, and keeps an AOF again for the restarts that follow."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from chaos.stack import ChaosStack


def test_a_restart_from_a_snapshot_loses_what_came_after_and_the_aof_resumes(
    tmp_path: Path,
) -> None:
    stack = ChaosStack()
    client = redis.Redis(port=stack.settings.redis_port)
    try:
        stack.start_process("redis")
        client.set("before", "1")
        stack.snapshot_redis(tmp_path / "snapshot.rdb")
        client.set("after", "1")
        stack.restart_redis_from(tmp_path / "snapshot.rdb")
        assert (client.get("before"), client.get("after")) == (b"1", None)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("later", "1")
        stack.stop_process("redis", signal.SIGKILL)
        stack.start_process("redis")  # from its AOF
        assert (client.get("before"), client.get("later")) == (b"1", b"1")
    finally:
        client.close()
        stack.stop()
        stack.remove()
