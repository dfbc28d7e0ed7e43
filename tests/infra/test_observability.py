"""Prometheus rules (promtool check + unit tests) and the Grafana dashboard."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from tests.infra.tools import OBSERVABILITY, run, tool

RULES = OBSERVABILITY / "rules"
DASHBOARD = OBSERVABILITY / "grafana" / "maas-dashboard.json"

# Modules that define the services' metrics; importing them registers the metrics.
# Each service's bootstrap imports every module that defines one of its metrics.
METRIC_MODULES = [
    "services.gateway.bootstrap",
    "services.ledger.bootstrap",
    "services.meme.bootstrap",
    "shared.serve",
]

SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}


def exported_metrics() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, [""]):
            names.add(family.name + suffix)
    return {n for n in names if n.startswith("maas_")}


def referenced_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(maas_[a-z_]+)\b", expr))


def rule_exprs() -> list[str]:
    exprs = []
    for path in (RULES / "recording.yml", RULES / "alerts.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [rule["expr"] for rule in group["rules"]]
    return exprs


def recorded() -> dict[str, str]:
    """Recording rule name -> expression."""
    groups = yaml.safe_load((RULES / "recording.yml").read_text())["groups"]
    return {r["record"]: r["expr"] for g in groups for r in g["rules"]}


def expand(expr: str) -> str:
    """The expression with the recording rules it uses appended, so metrics behind them count."""
    rules = recorded()
    used = set(re.findall(r"\b(maas:[a-z0-9_:]+)", expr))
    unknown = used - set(rules)
    assert not unknown, f"unknown recording rules {unknown}"
    return " ".join([expr, *(rules[name] for name in sorted(used))])


def test_promtool_check_rules() -> None:
    result = run([tool("promtool"), "check", "rules", "recording.yml", "alerts.yml"], cwd=RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_promtool_unit_tests_fire_and_stay_quiet() -> None:
    files = sorted(p.name for p in (RULES / "tests").glob("*.yml"))
    assert files, "no promtool unit tests"
    result = run([tool("promtool"), "test", "rules", *files], cwd=RULES / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_every_alert_has_a_firing_and_a_quiet_test() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in (RULES / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts - fires == set(), "alerts never shown to fire"
    assert alerts - quiet == set(), "alerts never shown to stay quiet"


def test_rules_use_only_exported_metrics() -> None:
    known = exported_metrics()
    used = set().union(*(referenced_metrics(expand(e)) for e in rule_exprs()))
    assert used, "no metric found in the rules"
    assert used - known == set()


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_is_valid_and_uses_exported_metrics() -> None:
    dashboard = json.loads(Path(DASHBOARD).read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    known = exported_metrics()
    used = set().union(*(referenced_metrics(expand(e)) for e in dashboard_exprs(dashboard)))
    assert used - known == set()
    # Every metric the services export is on the dashboard, except the plumbing ones.
    plumbing = {"maas_relay_shards_held", "maas_ledger_messages_in_flight"}
    base = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in exported_metrics()}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in used}
    missing = {m for m in base - shown - plumbing if not m.startswith("maas_geocoder_")}
    assert missing == set()
