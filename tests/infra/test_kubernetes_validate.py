"""Rendered manifests against the Kubernetes OpenAPI schemas (offline, strict)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import ENVIRONMENTS, Manifest
from tests.infra.tools import KUBE_VERSION, run, venv_bin

# Custom resources have no schema in kubernetes-validate: ServiceMonitor and PrometheusRule
# (Prometheus operator) are checked by test_helm.py and by promtool instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_rendered_manifests_match_kubernetes_schemas(
    rendered: dict[str, list[Manifest]], values_file: str, tmp_path: Path
) -> None:
    manifests = [m for m in rendered[values_file] if m["kind"] not in CRD_KINDS]
    assert len(manifests) >= 10
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    result = run(
        [venv_bin("kubernetes-validate"), "--strict", "-k", KUBE_VERSION, "--no-warn", path]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(manifests), result.stdout
