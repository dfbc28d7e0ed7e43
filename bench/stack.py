"""The whole pipeline on free loopback ports, in a throw-away directory, for one bench run.

Reuses the local stack's process helpers; the wiring (which settings each service gets)
lives here so the bench does not depend on the test suite.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.profile import STALL_S
from infra.local.stack import (
    Running,
    Server,
    free_port,
    http_ok,
    localstack_server,
    redis_server,
    service,
    start,
    stop_pid,
    store_servers,
    tcp_answers,
)
from shared.settings import DEFAULT_RATE_LIMITS, DEV_ROLE_MAP, Settings, to_environment
from shared.sqs import provision_queues, sqs_client

# Limiting is the product's business, not the bench's: the load's tokens carry a role
# whose bucket is out of reach. The product's own limits stay, for the reference scenario.
BENCH_ROLE = "bench"
RATE_LIMITS = {
    **{role: limit.model_dump() for role, limit in DEFAULT_RATE_LIMITS.items()},
    BENCH_ROLE: {"rate": 1_000_000_000, "burst": 1_000_000_000},
}
FAKE_AI_DELAY_S = 0.5


def python_server(name: str, module: str, port: int, *args: str) -> Server:
    return Server(
        name=name,
        port=port,
        argv=[sys.executable, "-m", module, str(port), *args],
        ready=lambda: tcp_answers(port),
    )


@dataclass
class BenchStack:
    """Redis, LocalStack, PostgreSQL and FerretDB, the fake OpenAI, meme, ledger and gateway."""

    workers: int
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="maas-bench-")))
    processes: dict[str, Running] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fake_ai_port = free_port()
        self.hello_port = free_port()
        self.values: dict[str, Any] = {
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "sqs_endpoint_url": f"http://127.0.0.1:{free_port()}",
            "mongo_url": f"mongodb://127.0.0.1:{free_port()}",
            "mongo_db": "maas_bench",
            "gateway_port": free_port(),
            "meme_port": free_port(),
            "ledger_port": free_port(),
            "gateway_workers": self.workers,
            "rate_limits": RATE_LIMITS,
            "jwt_role_map": {**DEV_ROLE_MAP, BENCH_ROLE: BENCH_ROLE},
            "openai_base_url": f"http://127.0.0.1:{self.fake_ai_port}/v1",
            "openai_api_key": "bench-not-a-secret",
            "stall_report_s": STALL_S,
        }
        self.values["meme_url"] = f"http://127.0.0.1:{self.values['meme_port']}"
        self.settings = Settings(**self.values)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self.settings, f'{name}_port')}"

    @property
    def hello_url(self) -> str:
        return f"http://127.0.0.1:{self.hello_port}"

    def pids(self) -> dict[str, int]:
        return {name: running.process.pid for name, running in self.processes.items()}

    def _start(self, server: Server) -> None:
        self.processes[server.name] = start(server, self.run_dir, timeout_s=120)

    def data(self, name: str) -> Path:
        path = self.run_dir / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def start(self) -> None:
        """Backends first, then the queues, then the services that need them."""
        s = self.settings
        self._start(redis_server(s.redis_port, self.data("redis")))
        self.run_dir.chmod(0o755)  # the postgres user keeps its cluster under it
        for server in store_servers(s.mongo_port, self.data("store")):
            self._start(server)
        self._start(localstack_server(s.sqs_port, self.data("localstack")))
        async with sqs_client(s) as sqs:
            await provision_queues(sqs, s)
        self._start(
            python_server(
                "fake-openai", "bench.fake_openai", self.fake_ai_port, str(FAKE_AI_DELAY_S)
            )
        )
        env = to_environment(self.values)
        for name in ("meme", "ledger", "gateway"):
            self._start(service(name, getattr(s, f"{name}_port"), env))
        self._start(python_server("hello", "bench.hello", self.hello_port, str(self.workers)))

    def start_trace_sink(self) -> tuple[str, Running]:
        """A collector that accepts OTLP/HTTP exports (bench/otlp_sink.py): its endpoint
        and process, kept apart from the stack's so its CPU is not counted as ours."""
        port = free_port()
        sink = start(python_server("otlp-sink", "bench.otlp_sink", port), self.run_dir)
        return f"http://127.0.0.1:{port}", sink

    def restart_services(self, extra_env: dict[str, str]) -> None:
        """Meme, ledger and gateway again, with `extra_env` (the `OTEL_*` settings of a
        tracing scenario; {} for none)."""
        for name in ("gateway", *self.ledger_names(), "meme"):
            stop_pid(self.processes.pop(name).process.pid)
        env = {**to_environment(self.values), **extra_env}
        for name in ("meme", "ledger", "gateway"):
            self._start(service(name, getattr(self.settings, f"{name}_port"), env))

    def ledger_names(self) -> list[str]:
        return [name for name in self.processes if name.startswith("ledger")]

    def stop_ledgers(self) -> None:
        for name in self.ledger_names():
            stop_pid(self.processes.pop(name).process.pid)

    def start_ledgers(self, count: int) -> None:
        """`count` ledger processes on one queue, as replicas of a deployment run, started
        side by side so that they begin on a backlog together."""
        servers = []
        for index in range(count):
            port = self.settings.ledger_port if index == 0 else free_port()
            server = service("ledger", port, to_environment({**self.values, "ledger_port": port}))
            servers.append(
                dataclasses.replace(server, name=f"ledger-{index + 1}" if index else "ledger")
            )
        with ThreadPoolExecutor(len(servers)) as pool:
            for server, running in zip(
                servers, pool.map(lambda s: start(s, self.run_dir, 120), servers), strict=True
            ):
                self.processes[server.name] = running

    def wait_ai_ready(self, timeout_s: float) -> None:
        """The gateway picks AI only once the meme service says its upstream is there."""
        deadline = time.monotonic() + timeout_s
        while not http_ok(f"{self.url('meme')}/readyz", b'"ai_available":true'):
            if time.monotonic() > deadline:
                raise RuntimeError("the meme service never reported AI available")
            time.sleep(0.2)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            stop_pid(self.processes.pop(name).process.pid)

    def logs(self) -> Path:
        return self.run_dir / "logs"

    def remove(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)
