"""Load generators: wrk with the rotating Lua script, and redis-benchmark.

Each generator is a child process; its own CPU time and peak RSS come from wait4's
resource usage, so the cost of generating load is reported next to the servers'.
"""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

LUA = Path(__file__).resolve().parent / "wrk" / "rotate.lua"
MARK = "BENCH_JSON "

QUERIES = [
    "food",
    "pizza",
    "coffee",
    "tacos",
    "bagels",
    "rain",
    "traffic",
    "rent",
    "subway",
    "cats",
    "dogs",
    "mondays",
    "deadlines",
    "weather",
    "beach",
    "snow",
    "parking",
    "tourists",
    "bikes",
    "wifi",
    "brunch",
    "taxes",
    "meetings",
    "gym",
    "pigeons",
    "noise",
    "sunsets",
    "ramen",
    "croissants",
    "football",
    "elections",
    "hiking",
    "museums",
    "nightlife",
    "startups",
    "bureaucracy",
    "fog",
    "heat",
    "queues",
    "airports",
    "trains",
    "wine",
    "beer",
    "tea",
    "dumplings",
]


@dataclass
class WrkResult:
    seconds: float
    requests: int
    rps: float
    statuses: dict[int, int]
    charged: int
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    cpu_s: float
    peak_rss_mb: float
    offered_rps: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def errors(self) -> dict[str, int]:
        """Every answer that is not a 200, by status, plus socket errors."""
        counts = {str(s): n for s, n in sorted(self.statuses.items()) if s != 200}
        counts.update({f"socket_{k}": n for k, n in self.socket_errors.items() if n})
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "offered_rps": round(self.offered_rps, 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors(),
            "charged": self.charged,
            "latency_ms": self.latency_ms,
            "wrk_cpu_s": round(self.cpu_s, 2),
            "wrk_peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def write_requests(path: Path, lines: list[tuple[str, ...]]) -> Path:
    """One request a line: path, bearer token and, for a POST, its JSON body."""
    path.write_text("".join("\t".join(line) + "\n" for line in lines))
    return path


def meme_paths(rng: random.Random, count: int, kind: str | None = None) -> list[str]:
    """Varied places (anywhere inhabited-ish) and one- or two-word topics."""
    suffix = f"&kind={kind}" if kind else ""
    paths = []
    for _ in range(count):
        lat = rng.uniform(-55.0, 70.0)
        lon = rng.uniform(-180.0, 180.0)
        words = rng.sample(QUERIES, rng.choice((1, 1, 2)))
        query = "+".join(words)
        paths.append(f"/v1/memes?lat={lat:.6f}&lon={lon:.6f}&query={query}{suffix}")
    return paths


class Wrk:
    """One wrk run; start() returns at once so two runs can overlap (the AI scenario)."""

    def __init__(
        self,
        url: str,
        requests_file: Path,
        seconds: float,
        connections: int,
        threads: int = 1,
        rate: float = 0.0,
        grace_s: int = 0,
        think_ms: int = 0,
    ) -> None:
        """Send for `seconds`; with `grace_s`, then wait that long for the last answers.

        With `think_ms`, each connection waits that long before each request.
        """
        self.rate = rate
        self.active_s = max(1, round(seconds))
        self.grace_s = grace_s
        self.argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{self.active_s + grace_s}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(LUA),
            url,
        ]
        self.env = {
            **os.environ,
            "BENCH_REQUESTS": str(requests_file),
            "BENCH_RATE": str(rate),
            "BENCH_THREADS": str(threads),
            "BENCH_STOP_MS": str(self.active_s * 1000 if grace_s else 0),
            "BENCH_THINK_MS": str(think_ms),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        self.started = 0.0

    def start(self) -> Wrk:
        self.started = time.monotonic()
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, loopback target
            self.argv, stdout=self.out, stderr=subprocess.STDOUT, env=self.env
        )
        return self

    def wait(self) -> WrkResult:
        assert self.process is not None
        _, status, rusage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - self.started
        self.out.seek(0)
        text = self.out.read().decode(errors="replace")
        self.out.close()
        line = next((ln for ln in text.splitlines() if ln.startswith(MARK)), None)
        if self.process.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({self.process.returncode}):\n{text[-3000:]}")
        data = orjson.loads(line[len(MARK) :])
        seconds = self.active_s if self.grace_s else data["duration_us"] / 1e6
        return WrkResult(
            seconds=seconds,
            requests=data["requests"],
            rps=data["requests"] / seconds if seconds else 0.0,
            statuses={int(k): v for k, v in data["statuses"].items()},
            charged=data["charged"],
            socket_errors=data["socket_errors"],
            latency_ms={k: round(v / 1000, 2) for k, v in data["latency_us"].items()},
            cpu_s=rusage.ru_utime + rusage.ru_stime,
            peak_rss_mb=rusage.ru_maxrss / 1024,
            offered_rps=self.rate,
            raw={"elapsed_s": round(elapsed, 2), "argv": self.argv[:-1]},
        )


def run_wrk(url: str, requests_file: Path, seconds: float, connections: int) -> WrkResult:
    return Wrk(url, requests_file, seconds, connections).start().wait()


def redis_benchmark(port: int, requests: int, clients: int, command: list[str]) -> dict[str, Any]:
    """Run one redis-benchmark test; returns its CSV row (rps, latency in ms)."""
    argv = [
        "redis-benchmark",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-n",
        str(requests),
        "-c",
        str(clients),
        "-r",
        "100000000",
        "--csv",
        *command,
    ]
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        _, status, rusage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
    rows = list(csv.DictReader(io.StringIO(text)))
    if process.returncode != 0 or not rows:
        raise RuntimeError(f"redis-benchmark failed:\n{text[-2000:]}")
    row = rows[-1]
    return {
        "seconds": round(elapsed, 2),
        "requests": requests,
        "clients": clients,
        "rps": float(row["rps"]),
        "latency_ms": {
            "mean": float(row["avg_latency_ms"]),
            "p50": float(row["p50_latency_ms"]),
            "p99": float(row["p99_latency_ms"]),
            "max": float(row["max_latency_ms"]),
        },
        "generator_cpu_s": round(rusage.ru_utime + rusage.ru_stime, 2),
    }
