"""The checker can fail: a minute of chaos against a build with a deliberate defect
(chaos/mutants.py) must end with the checker naming accounts whose books are wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chaos.test_chaos_run import SEED, chaos


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mutant", "faults"),
    [
        ("no-refund", "sigstop,sigkill,slow-meme"),
        ("no-duplicate-check", "localstack-pause,sigkill,sigterm"),
    ],
)
def test_the_checker_reports_a_deliberate_defect(tmp_path: Path, mutant: str, faults: str) -> None:
    code, output = chaos(tmp_path, "--seed", str(SEED), "--mutant", mutant, "--faults", faults)
    assert code == 1, output
    assert re.search(r"FAIL chaos-\d+: (redis|mongo) balance \d+, expected \d+", output), output
