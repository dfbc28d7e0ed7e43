"""The import graph keeps its shape: services never import each other, shared never a service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "ledger", "meme")


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = tuple(f"services.{other}" for other in SERVICES if other != service)
    for path in (ROOT / "services" / service).rglob("*.py"):
        crossing = {m for m in imported_modules(path) if m.startswith(others)}
        assert not crossing, f"{path.relative_to(ROOT)} imports {sorted(crossing)}"


def test_shared_code_imports_no_service_and_no_entrypoint() -> None:
    for path in (ROOT / "shared").rglob("*.py"):
        crossing = {m for m in imported_modules(path) if m.startswith(("services", "cli", "bench"))}
        assert not crossing, f"{path.relative_to(ROOT)} imports {sorted(crossing)}"


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("layer", ["domain", "adapters"])
def test_domain_and_adapters_never_reach_up_to_use_cases_or_entrypoints(
    service: str, layer: str
) -> None:
    """Domain logic imports only domain logic; adapters only adapters and the domain."""
    allowed = [f"services.{service}.domain"]
    if layer == "adapters":
        allowed.append(f"services.{service}.adapters")
    for path in (ROOT / "services" / service / layer).rglob("*.py"):
        own = {m for m in imported_modules(path) if m.startswith(f"services.{service}")}
        upward = {m for m in own if not m.startswith(tuple(allowed))}
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"
