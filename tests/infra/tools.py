"""Where the infra validation tools live: the tool cache of infra/local/install_infra_tools.sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "infra" / "helm" / "maas"
TERRAFORM = ROOT / "infra" / "terraform"
OBSERVABILITY = ROOT / "infra" / "observability"
WORKFLOWS = ROOT / ".github" / "workflows"
INSTALL = "infra/local/install_infra_tools.sh"

# Kubernetes version the chart is rendered and validated for (kubernetes-validate ships its
# schemas, so this works offline).
KUBE_VERSION = "1.33.0"


def cache_dir() -> Path:
    """${MAAS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/maas}, as in the install scripts."""
    if explicit := os.environ.get("MAAS_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "maas"


def tool(name: str) -> Path:
    """A Go tool (helm, promtool, actionlint) built by the install script; fails when absent."""
    path = cache_dir() / "tools" / "bin" / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: run {INSTALL}")
    return path


def venv_bin(name: str) -> Path:
    """An executable of the infra venv (checkov, kubernetes-validate, python)."""
    path = cache_dir() / "venv-infra" / "bin" / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: run {INSTALL}")
    return path


def hcl2_pythonpath() -> Path:
    """python-hcl2 lives beside checkov's own hcl2 fork, in its own directory of the venv."""
    path = cache_dir() / "venv-infra" / "hcl2-lib"
    if not (path / "hcl2").is_dir():
        pytest.fail(f"{path}/hcl2 missing: run {INSTALL}")
    return path


def run(
    args: list[str | Path],
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a tool without network access needs; output is captured for assertion messages."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def helm_template(values_file: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        [
            tool("helm"),
            "template",
            "maas",
            CHART,
            "--namespace",
            "maas",
            "--kube-version",
            KUBE_VERSION,
            "-f",
            CHART / values_file,
            *extra,
        ]
    )
