"""The bench's CPU accounting counts children that start and end within a scenario."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import procstat

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"


def test_a_child_that_ends_within_the_scenario_is_counted_by_its_parent() -> None:
    """PostgreSQL's autovacuum workers start and end between two samples: seen alive by
    neither, their CPU is the parent's once reaped (it went to "not ours" before)."""
    roots = {"tree": os.getpid()}
    before = procstat.snapshot(roots)
    subprocess.run([sys.executable, "-c", BURN], check=True)  # burns 0.3 s, then reaped
    used = procstat.usage(before, procstat.snapshot(roots), 1.0)["tree"]
    assert float(used["cpu_s"]) >= 0.25
