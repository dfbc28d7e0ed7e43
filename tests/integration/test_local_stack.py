"""`make run`, `make up` and Ctrl-C on the local stack: real processes, free ports.

PID 1 here does not reap orphans, so a killed server whose parent does not wait for it
stays a zombie: exactly what `make up` must see as dead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.local.stack import ROOT, STOP_ORDER, free_port, process_stat, running
from shared.settings import to_environment

STACK = [sys.executable, "-m", "infra.local.stack"]
SERVERS = {name for group in STOP_ORDER for name in group} - {"jaeger"}  # --tracing only
START_TIMEOUT_S = 240


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """Outside pytest's private temp dir: the postgres user must reach its cluster."""
    path = Path(tempfile.mkdtemp(prefix="maas-local-stack-"))
    path.chmod(0o755)
    yield path
    subprocess.run([*STACK, "--run-dir", str(path), "down"], cwd=ROOT, check=False)
    shutil.rmtree(path, ignore_errors=True)


def free_port_env() -> dict[str, str]:
    ports = {name: free_port() for name in ("redis", "cache", "sqs", "mongo", "meme")}
    settings = {
        "redis_url": f"redis://127.0.0.1:{ports['redis']}/0",
        "cache_redis_url": f"redis://127.0.0.1:{ports['cache']}/0",
        "sqs_endpoint_url": f"http://127.0.0.1:{ports['sqs']}",
        "mongo_url": f"mongodb://127.0.0.1:{ports['mongo']}",
        "meme_port": ports["meme"],
        "meme_url": f"http://127.0.0.1:{ports['meme']}",
        "ledger_port": free_port(),
        "gateway_port": free_port(),
    }
    return {**os.environ, **to_environment(settings)}


def pids(run_dir: Path) -> dict[str, int]:
    return {path.stem: int(path.read_text()) for path in (run_dir / "pids").glob("*.pid")}


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# The banner's console address and the admin token to sign in with.
CONSOLE_LINES = re.compile(rb"  (http://\S+/console/)\n  sign in with [^\n]*\n  (\S+)\n")


def read_until(fd: int, marker: re.Pattern[bytes], timeout_s: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while not marker.search(seen):
        chunk = os.read(fd, 65536)
        if not chunk or time.monotonic() > deadline:
            raise AssertionError(f"the stack never printed {marker.pattern!r}:\n{seen.decode()}")
        seen += chunk
    return seen


def healthy(port: str) -> bool:
    url = f"http://127.0.0.1:{port}/healthz"
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def test_up_restarts_a_killed_service_and_ctrl_c_stops_all_without_a_reader(
    run_dir: Path,
) -> None:
    env = free_port_env()
    reader, writer = os.pipe()  # `make run | tee run.log`
    stack = subprocess.Popen(
        [*STACK, "--run-dir", str(run_dir), "run"], stdout=writer, env=env, cwd=ROOT
    )
    os.close(writer)
    try:
        printed = read_until(reader, CONSOLE_LINES, START_TIMEOUT_S)
        console, token = CONSOLE_LINES.findall(printed)[0]
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        form = urllib.parse.urlencode({"token": token.decode()}).encode()
        with browser.open(console.decode() + "signin", data=form, timeout=5) as page:
            assert page.url.endswith("/console/dead-letters"), "the banner's token signs in"
        before = pids(run_dir)
        assert set(before) == SERVERS

        os.kill(before["meme"], signal.SIGKILL)
        wait_until(lambda: not running(before["meme"]), "the meme service to die")
        assert process_stat(before["meme"]) == ("Z", before["meme"])  # kill -0 says alive

        up = subprocess.run(
            [*STACK, "--run-dir", str(run_dir), "up"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        assert up.returncode == 0, up.stderr.decode()[-3000:]
        after = pids(run_dir)
        assert after["meme"] != before["meme"]
        assert running(after["meme"])
        assert healthy(env["MAAS_MEME_PORT"])
        assert {n: p for n, p in after.items() if n != "meme"} == {
            n: p for n, p in before.items() if n != "meme"
        }

        os.close(reader)  # tee dies first under Ctrl-C
        reader = -1
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=120) == 0
        assert [name for name, pid in after.items() if running(pid)] == []
        assert pids(run_dir) == {}
    finally:
        if reader >= 0:
            os.close(reader)
        if stack.poll() is None:
            stack.kill()
            stack.wait()
