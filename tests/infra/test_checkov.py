"""checkov over the rendered chart and the Terraform: every finding fixed or skipped inline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.conftest import ENVIRONMENTS, Manifest
from tests.infra.tools import TERRAFORM, run, venv_bin

OFFLINE = {
    "BC_SKIP_MAPPING": "TRUE",
    "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    "LOG_LEVEL": "ERROR",
}


def checkov(*args: str | Path) -> list[dict[str, Any]]:
    result = run(
        [venv_bin("checkov"), "--quiet", "--skip-download", "-o", "json", *args],
        env=OFFLINE,
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    return [r for r in reports if r.get("check_type")]


def failures(reports: list[dict[str, Any]]) -> list[str]:
    return [
        f"{c['check_id']} {c['resource']} {c.get('check_name', '')}"
        for r in reports
        for c in r["results"].get("failed_checks", [])
    ]


def passed(reports: list[dict[str, Any]]) -> int:
    return sum(int(r["summary"]["passed"]) for r in reports)


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_checkov_kubernetes(
    rendered: dict[str, list[Manifest]], values_file: str, tmp_path: Path
) -> None:
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(rendered[values_file]))
    reports = checkov("--framework", "kubernetes", "-f", path)
    assert passed(reports) > 50, "checkov ran no Kubernetes checks"
    assert failures(reports) == []


def test_checkov_terraform() -> None:
    reports = checkov("--framework", "terraform", "-d", TERRAFORM)
    assert passed(reports) > 20, "checkov ran no Terraform checks"
    assert failures(reports) == []
