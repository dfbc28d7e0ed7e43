"""The chaos stack: two gateways, two ledgers and the meme service over Redis (AOF), the
store and LocalStack, on free loopback ports in a throw-away directory.

Every process can be killed, stopped, continued and started again by name; Redis can be
snapshotted and restarted from that older snapshot (a failover to a replica behind).
With a mutant, the services and the CLI run from a patched copy of the tree.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.stack import python_server
from infra.local.stack import (
    ROOT,
    Running,
    Server,
    free_port,
    group_running,
    localstack_server,
    redis_server,
    service,
    start,
    stop_pid,
    store_servers,
)
from shared.settings import Settings, to_environment
from shared.sqs import provision_queues, sqs_client

GATEWAYS = ("gateway-1", "gateway-2")
LEDGERS = ("ledger-1", "ledger-2")
SERVICES = (*GATEWAYS, *LEDGERS, "meme")
FAKE_AI_DELAY_S = 0.3
# Short enough that a LocalStack pause of a quarter of a minute outlasts it.
VISIBILITY_TIMEOUT_S = 10
START_TIMEOUT_S = 120


@dataclass
class ChaosStack:
    """The processes by name, each with the `Server` that starts it again."""

    code_dir: Path = ROOT
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="maas-chaos-")))
    servers: dict[str, Server] = field(default_factory=dict)
    processes: dict[str, Running] = field(default_factory=dict)
    pgids: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)  # the postgres user keeps its cluster under it
        ai_port = free_port()
        self.values: dict[str, Any] = {
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "cache_redis_url": "",  # no meme cache: every meme is made
            "sqs_endpoint_url": f"http://127.0.0.1:{free_port()}",
            "mongo_url": f"mongodb://127.0.0.1:{free_port()}",
            "mongo_db": "maas_chaos",
            "meme_port": free_port(),
            "visibility_timeout_s": VISIBILITY_TIMEOUT_S,
            "openai_base_url": f"http://127.0.0.1:{ai_port}/v1",
            "openai_api_key": "chaos-not-a-secret",
        }
        self.values["meme_url"] = f"http://127.0.0.1:{self.values['meme_port']}"
        self.settings = Settings(**self.values)
        s = self.settings
        self._add(redis_server(s.redis_port, self.data("redis")))
        for server in store_servers(s.mongo_port, self.data("store")):
            self._add(server)
        self._add(localstack_server(s.sqs_port, self.data("localstack")))
        self._add(python_server("fake-openai", "bench.fake_openai", ai_port, str(FAKE_AI_DELAY_S)))
        self._add(self._service("meme", "meme", s.meme_port))
        for name in (*LEDGERS, *GATEWAYS):
            self._add(self._service(name, name.split("-")[0], free_port()))

    def _service(self, name: str, kind: str, port: int) -> Server:
        values = {**self.values, f"{kind}_port": port}
        return replace(service(kind, port, to_environment(values)), name=name, cwd=self.code_dir)

    def _add(self, server: Server) -> None:
        self.servers[server.name] = server

    def data(self, name: str) -> Path:
        path = self.run_dir / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.servers[name].port}"

    @property
    def environment(self) -> dict[str, str]:
        return to_environment(self.values)

    async def start(self) -> None:
        """Backends first, then the queues, then the services that need them; what does
        not depend on another starts side by side."""
        self.start_together("redis", "postgres", "localstack")
        self.start_process("ferretdb")
        async with sqs_client(self.settings) as sqs:
            await provision_queues(sqs, self.settings)
        self.start_together("fake-openai", "meme", *LEDGERS, *GATEWAYS)

    def start_together(self, *names: str) -> None:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(self.start_process, names))

    def start_process(self, name: str, *extra_argv: str) -> None:
        server = self.servers[name]
        if extra_argv:
            server = replace(server, argv=[*server.argv, *extra_argv])
        running = start(server, self.run_dir, timeout_s=START_TIMEOUT_S)
        self.processes[name] = running
        self.pgids.add(running.process.pid)

    def send(self, name: str, sig: signal.Signals) -> None:
        """`sig` to the process's whole group (a server's workers share it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.processes[name].process.pid, sig)

    def stop_process(self, name: str, sig: signal.Signals, timeout_s: float = 60) -> None:
        """Send `sig`, wait until the group is gone (SIGKILL after the timeout), reap it."""
        pid = self.processes[name].process.pid
        self.send(name, sig)
        deadline = time.monotonic() + timeout_s
        while group_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_pid(pid, timeout_s=1)

    def snapshot_redis(self, path: Path) -> None:
        """What a replica has at this moment: an RDB dump taken over replication."""
        self.redis_cli("--rdb", str(path))

    def restart_redis_from(self, snapshot: Path) -> None:
        """Redis fails over to the replica that has `snapshot`: the writes since are gone.

        It loads the dump with the AOF off, then turns the AOF on again (a rewrite from
        what it loaded), so a later restart starts from there."""
        self.stop_process("redis", signal.SIGKILL)
        data = self.data("redis")
        shutil.rmtree(data / "appendonlydir", ignore_errors=True)
        shutil.copyfile(snapshot, data / "dump.rdb")
        self.start_process("redis", "--appendonly", "no")
        self.redis_cli("config", "set", "appendonly", "yes")
        deadline = time.monotonic() + START_TIMEOUT_S
        while "aof_rewrite_in_progress:0" not in (
            info := self.redis_cli("info", "persistence")
        ) or (
            "aof_rewrite_scheduled:0" not in info
        ):  # until the AOF holds what was loaded, a kill would restart Redis empty
            if time.monotonic() > deadline:
                raise RuntimeError("Redis did not write its AOF after the rollback")
            time.sleep(0.05)
        (data / "dump.rdb").unlink(missing_ok=True)

    def redis_cli(self, *args: str) -> str:
        argv = ["redis-cli", "-p", str(self.settings.redis_port), *args]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout

    def maas(self, *args: str, timeout_s: float = 300) -> tuple[int, str]:
        """The operators' CLI against this stack, from the code under test."""
        done = subprocess.run(
            [sys.executable, "-c", "from cli.main import main; main()", *args],
            cwd=self.code_dir,
            env={**os.environ, **self.environment},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    def stop(self) -> None:
        """Services first, then what they use, each group side by side; a stopped
        (SIGSTOP) process is continued first."""
        groups = [[*SERVICES, "fake-openai"], ["localstack", "ferretdb", "redis"], ["postgres"]]
        for group in groups:
            names = [name for name in group if name in self.processes]
            for name in names:
                self.send(name, signal.SIGCONT)
            with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
                list(pool.map(stop_pid, [self.processes.pop(n).process.pid for n in names]))

    def left_running(self) -> list[int]:
        """Process groups this stack started that still have a live process."""
        return sorted(pgid for pgid in self.pgids if group_running(pgid))

    def logs(self) -> Path:
        return self.run_dir / "logs"

    def remove(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)
