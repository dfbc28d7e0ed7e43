from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.infra.tools import helm_template

Manifest = dict[str, Any]

ENVIRONMENTS = ["values-dev.yaml", "values-prod.yaml"]


def render(values_file: str, *extra: str) -> list[Manifest]:
    result = helm_template(values_file, *extra)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    """The chart rendered with each environment's values, keyed by values file."""
    return {values: render(values) for values in ENVIRONMENTS}


def by_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}
