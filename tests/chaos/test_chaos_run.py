"""`make chaos` in miniature: a minute of load and faults from a fixed seed, then the
independent checker. The long runs (`make chaos`, ten minutes) are the real proof; this
keeps the harness and the product honest on every `make test`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SEED = 20261206


def chaos(results: Path, *args: str, minutes: float = 1) -> tuple[int, str]:
    command = [sys.executable, "-m", "chaos.run", "--minutes", str(minutes)]
    done = subprocess.run(
        [*command, "--results", str(results), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_a_minute_of_faults_under_load_leaves_every_balance_exact(tmp_path: Path) -> None:
    code, output = chaos(tmp_path, "--seed", str(SEED))
    assert code == 0, output
    assert "the books are exact" in output
    (run,) = tmp_path.iterdir()
    assert (run / "history.jsonl").stat().st_size > 0
    assert "| sig" in (run / "report.md").read_text(), "faults were injected"
