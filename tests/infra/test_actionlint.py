"""actionlint over the GitHub workflows; actions pinned by full commit SHA."""

from __future__ import annotations

import re

from tests.infra.tools import WORKFLOWS, run, tool


def test_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    result = run([tool("actionlint"), "-no-color", *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_by_commit_sha() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            match = re.search(r"uses:\s*([^\s#]+)", line)
            if not match or match.group(1).startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match.group(1)), line
            assert re.search(r"#\s*v\d", line), f"pinned action needs a version comment: {line}"


def test_ci_runs_make_test() -> None:
    assert "run: make test" in (WORKFLOWS / "ci.yml").read_text()
