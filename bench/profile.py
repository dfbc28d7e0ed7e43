"""Where the services spend a scenario: the stalls they logged, and py-spy profiles.

Every service of the bench stack reports a loop held for `STALL_S` or more with its
stack (shared/stalls.py). At saturation, py-spy samples the gateway and the meme
service; the raw profiles go next to the result, their top frames into it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

STALL_S = 0.1
SERVICES = ("gateway", "meme", "ledger")
PROJECT = ("services/", "shared/")
TOP = 12


def log_offsets(logs: Path) -> dict[str, int]:
    """Where each service's log ends now."""
    return {
        name: path.stat().st_size if (path := logs / f"{name}.log").exists() else 0
        for name in SERVICES
    }


def stalls_since(logs: Path, offsets: dict[str, int]) -> dict[str, Any]:
    """The loop stalls each service logged after `offsets`: how many, the longest, and
    the innermost frames of ours they were in (the most frequent first)."""
    found: dict[str, Any] = {}
    for name in SERVICES:
        path = logs / f"{name}.log"
        if not path.exists():
            continue
        with path.open("rb") as log:
            log.seek(offsets.get(name, 0))
            lines = [orjson.loads(line) for line in log if b'"event loop held"' in line]
        where = Counter(
            "garbage collection"
            if line.get("by") == "garbage collection"
            else innermost(line.get("stack", []))
            for line in lines
        )
        found[name] = {
            "stalls": len(lines),
            "longest_ms": max((line.get("held_ms", 0) for line in lines), default=0),
            "where": where.most_common(5),
        }
    return found


def innermost(stack: list[str]) -> str:
    """The deepest frame in the product's code, else the deepest frame."""
    ours = [frame for frame in stack if any(p in frame for p in PROJECT)]
    frame = (ours or stack or ["(no stack)"])[-1]
    return frame.split(" | ")[0].removeprefix("File ")


def py_spy() -> str | None:
    """py-spy beside this interpreter (the dev dependencies), else on the PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy record of several processes at once, raw (collapsed) stacks to files."""

    def __init__(self, pids: dict[str, int], seconds: int, out: Path) -> None:
        self.out = out
        self.files = {name: out / f"{name}.txt" for name in pids}
        tool = py_spy()
        self.error = None if tool else "py-spy not installed"
        self.spies = []
        if tool:
            out.mkdir(parents=True, exist_ok=True)
            for name, pid in pids.items():
                argv = [tool, "record", "-r", "200", "-d", str(seconds), "-f", "raw",
                        "-o", str(self.files[name]), "-p", str(pid), "--nonblocking"]  # fmt: skip
                spy = subprocess.Popen(  # noqa: S603 - fixed argv, our own processes
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                self.spies.append(spy)

    def wait(self) -> dict[str, Any]:
        for spy in self.spies:
            _, err = spy.communicate(timeout=120)
            if spy.returncode != 0 and self.error is None:
                self.error = err.decode(errors="replace").strip()[-300:]
        if self.error:
            return {"error": self.error}
        return {name: summary(path) for name, path in self.files.items() if path.exists()}


def summary(path: Path) -> dict[str, Any]:
    """Top frames by self time, and our functions by inclusive time, as % of samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in {f for f in frames if any(p in f for p in PROJECT)}:
            inclusive[frame] += n
    share = 100 / total if total else 0.0
    return {
        "samples": total,
        "file": str(path),
        "self": [(frame, round(n * share, 1)) for frame, n in own.most_common(TOP)],
        "ours_inclusive": [(frame, round(n * share, 1)) for frame, n in inclusive.most_common(TOP)],
    }
