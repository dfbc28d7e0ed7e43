"""The Helm chart: lint, render, and the properties a safe rollout depends on."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import ENVIRONMENTS, Manifest, by_kind, render
from tests.infra.tools import CHART, KUBE_VERSION, TERRAFORM, WORKFLOWS, helm_template, run, tool

COMPONENTS = ("gateway", "meme", "ledger")
HTTP_COMPONENTS = ("gateway", "meme")
PORTS = {"gateway": 8080, "meme": 8081, "ledger": 8082}
MODULES = {c: f"services.{c}" for c in COMPONENTS}
IDP = ("--set", "config.MAAS_JWT_ISSUER=https://i/", "--set", "config.MAAS_JWT_AUDIENCE=maas")


def values(values_file: str) -> dict[str, object]:
    data = yaml.safe_load((CHART / values_file).read_text())
    assert isinstance(data, dict)
    return data


def merged_values(values_file: str) -> dict[str, object]:
    base = values("values.yaml")
    for key, value in values(values_file).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}  # type: ignore[dict-item]
        else:
            base[key] = value
    return base


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_helm_lint(values_file: str) -> None:
    result = run(
        [
            tool("helm"),
            "lint",
            CHART,
            "--strict",
            "--kube-version",
            KUBE_VERSION,
            "-f",
            CHART / values_file,
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_renders_every_component(rendered: dict[str, list[Manifest]], values_file: str) -> None:
    manifests = rendered[values_file]
    deployments = by_kind(manifests, "Deployment")
    services = by_kind(manifests, "Service")
    accounts = by_kind(manifests, "ServiceAccount")
    for component in COMPONENTS:
        assert f"maas-{component}" in deployments
        assert f"maas-{component}" in services
        assert f"maas-{component}" in accounts
        assert services[f"maas-{component}"]["spec"]["ports"][0]["port"] == PORTS[component]
        assert f"maas-{component}" in by_kind(manifests, "PodDisruptionBudget")
    assert set(by_kind(manifests, "ConfigMap")) == {"maas-config", "maas-stores"}
    # Secrets are never rendered: they come from existingSecret.
    assert not by_kind(manifests, "Secret")


def test_prod_has_autoscaling_monitoring_and_network_policies(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["values-prod.yaml"]
    hpas = by_kind(manifests, "HorizontalPodAutoscaler")
    assert set(hpas) == {"maas-gateway", "maas-meme"}
    for hpa in hpas.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        kinds = {m["type"] for m in hpa["spec"]["metrics"]}
        assert kinds == {"Resource", "Pods"}, "HPA scales on CPU and on a per-pod traffic metric"
        assert hpa["spec"]["minReplicas"] >= 2
    for name in hpas:
        assert "replicas" not in by_kind(manifests, "Deployment")[name]["spec"], (
            "an autoscaled Deployment must leave replicas to the HPA"
        )
    assert set(by_kind(manifests, "ServiceMonitor")) == {"maas-metrics"}
    assert set(by_kind(manifests, "NetworkPolicy")) == {f"maas-{c}" for c in COMPONENTS}


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_the_console_is_an_internal_service_of_the_ledger_pods(
    rendered: dict[str, list[Manifest]], values_file: str
) -> None:
    manifests = rendered[values_file]
    console = by_kind(manifests, "Service")["maas-console"]
    ledger = by_kind(manifests, "Deployment")["maas-ledger"]
    assert console["spec"]["type"] == "ClusterIP"
    assert console["spec"]["ports"][0]["port"] == PORTS["ledger"]
    pod_labels = ledger["spec"]["template"]["metadata"]["labels"]
    assert console["spec"]["selector"].items() <= pod_labels.items()
    (container,) = ledger["spec"]["template"]["spec"]["containers"]
    secrets = {
        e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    if values_file != "values-prod.yaml":  # prod verifies tokens with the JWKS
        assert "MAAS_JWT_SECRET" in secrets
    for ingress in by_kind(manifests, "Ingress").values():
        assert "maas-console" not in str(ingress)


def test_prod_lets_the_operators_namespace_reach_the_console(
    rendered: dict[str, list[Manifest]],
) -> None:
    policy = by_kind(rendered["values-prod.yaml"], "NetworkPolicy")["maas-ledger"]
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    namespaces = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in sources
    }
    assert namespaces == {"monitoring", "ops"}


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_pods_are_hardened_and_roll_without_dropping_capacity(
    rendered: dict[str, list[Manifest]], values_file: str
) -> None:
    for component in COMPONENTS:
        deployment = by_kind(rendered[values_file], "Deployment")[f"maas-{component}"]
        spec = deployment["spec"]
        rolling = spec["strategy"]["rollingUpdate"]
        assert rolling == {"maxUnavailable": 0, "maxSurge": "25%"}
        assert spec["minReadySeconds"] > 0
        pod = spec["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        zones = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
        assert zones == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", MODULES[component]]
        assert container["ports"][0]["containerPort"] == PORTS[component]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["runAsUser"] == 10001
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound])
        assert container["image"].startswith("ghcr.io/maas/maas:")


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_ledger_replicas_follow_shards(
    rendered: dict[str, list[Manifest]], values_file: str
) -> None:
    ledger = merged_values(values_file)["ledger"]
    assert isinstance(ledger, dict)
    shards, per = int(ledger["shards"]), int(ledger["shardsPerReplica"])
    deployment = by_kind(rendered[values_file], "Deployment")["maas-ledger"]
    assert deployment["spec"]["replicas"] == math.ceil(shards / per)
    assert deployment["spec"]["replicas"] <= shards
    config = by_kind(rendered[values_file], "ConfigMap")["maas-config"]
    assert config["data"]["MAAS_SHARDS"] == str(shards)


def test_ledger_replicas_scale_with_a_shard_override() -> None:
    result = helm_template("values-prod.yaml", "--set", "ledger.shards=128")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert by_kind(docs, "Deployment")["maas-ledger"]["spec"]["replicas"] == 16


def test_prod_service_accounts_carry_irsa_roles(rendered: dict[str, list[Manifest]]) -> None:
    accounts = by_kind(rendered["values-prod.yaml"], "ServiceAccount")
    for name in ("maas-gateway", "maas-ledger"):
        arn = accounts[name]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", arn)
    # The meme service needs no AWS access.
    assert "annotations" not in accounts["maas-meme"]["metadata"]
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())


def test_prometheus_rule_is_the_observability_rule_files(
    rendered: dict[str, list[Manifest]],
) -> None:
    (rule,) = by_kind(rendered["values-prod.yaml"], "PrometheusRule").values()
    rules_dir = CHART.parent.parent / "observability" / "rules"
    expected = []
    for name in ("recording.yml", "alerts.yml"):
        expected += yaml.safe_load((rules_dir / name).read_text())["groups"]
    assert rule["spec"]["groups"] == expected


def test_release_workflow_can_rewrite_the_prod_image_tag() -> None:
    """release.yml rewrites `  tag: "<sha>"` with sed; exactly one such line must exist."""
    text = (CHART / "values-prod.yaml").read_text()
    workflow = (WORKFLOWS / "release.yml").read_text()
    assert r"s/^(  tag: \")[0-9a-f]{40}(\")$/" in workflow
    matches = re.findall(r'^  tag: "([0-9a-f]{40})"$', text, flags=re.MULTILINE)
    assert len(matches) == 1
    image = values("values-prod.yaml")["image"]
    assert isinstance(image, dict)
    assert image["tag"] == matches[0]


@pytest.mark.parametrize(
    ("extra", "renders"),
    [
        ((), True),  # base values: prod with a required jwt-secret
        (("--set", "secretEnv.gateway[0].optional=true"), False),
        (("--set", "secretEnv.gateway=null"), False),
        (("--set", "secretEnv.ledger=null"), False),  # the console verifies tokens too
        (
            (
                "--set",
                "secretEnv.gateway=null",
                "--set",
                "secretEnv.ledger=null",
                "--set",
                "config.MAAS_JWT_JWKS_URL=https://i/j",
                *IDP,
            ),
            True,
        ),
        (("--set", "secretEnv.gateway=null", "--set", "config.MAAS_ENV=dev"), True),
    ],
)
def test_production_requires_a_jwt_source(extra: tuple[str, ...], renders: bool) -> None:
    result = helm_template("values.yaml", "--set", "image.tag=abc", *extra)
    assert (result.returncode == 0) is renders, result.stderr
    if not renders:
        assert "MAAS_ENV=prod needs a JWT source" in result.stderr


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [
        (("--set", "config.MAAS_JWT_ISSUER=null"), "needs config.MAAS_JWT_ISSUER"),
        (("--set", "config.MAAS_JWT_AUDIENCE="), "needs config.MAAS_JWT_AUDIENCE"),
        (("--set", "config.MAAS_JWT_ROLE_MAP="), "needs config.MAAS_JWT_ROLE_MAP"),
        (("-f", "{}"), "needs config.MAAS_JWT_ROLE_MAP"),
    ],
)
def test_production_refuses_tokens_of_other_applications_and_unmapped_roles(
    extra: tuple[str, ...], refusal: str, tmp_path: Path
) -> None:
    empty_role_map = tmp_path / "empty-role-map.yaml"
    empty_role_map.write_text('config:\n  MAAS_JWT_ROLE_MAP: "{}"\n')
    extra = tuple(str(empty_role_map) if arg == "{}" else arg for arg in extra)
    result = helm_template("values-prod.yaml", *extra)
    assert result.returncode != 0
    assert refusal in result.stderr


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_every_workload_has_egress_rules_and_none_reaches_the_metadata_service(
    rendered: dict[str, list[Manifest]], values_file: str
) -> None:
    policies = by_kind(rendered[values_file], "NetworkPolicy")
    for component in COMPONENTS:
        spec = policies[f"maas-{component}"]["spec"]
        assert "Egress" in spec["policyTypes"]
        blocks = [
            p["ipBlock"] for rule in spec["egress"] for p in rule.get("to", []) if "ipBlock" in p
        ]
        for block in blocks:
            if block["cidr"] == "0.0.0.0/0":
                assert "169.254.0.0/16" in block["except"], component
    meme = policies["maas-meme"]["spec"]["egress"]
    ports = {port["port"] for rule in meme for port in rule.get("ports", [])}
    assert 27017 not in ports, "the meme service never reaches MongoDB"
    (https,) = [r for r in meme if {p["port"] for p in r.get("ports", [])} == {443}]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        https["to"][0]["ipBlock"]["except"]
    )


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_the_gateway_grace_period_covers_the_drain_and_its_refunds(values_file: str) -> None:
    merged = merged_values(values_file)
    config = merged["config"]
    gateway = merged["gateway"]
    assert isinstance(config, dict)
    assert isinstance(gateway, dict)
    drain = float(config["MAAS_GATEWAY_DRAIN_S"])
    assert drain >= float(config["MAAS_MEME_AI_TIMEOUT_S"])  # an AI meme in flight can finish
    needed = float(str(merged["preStopSleepSeconds"])) + drain + 5  # + the refunds after it
    assert gateway["terminationGracePeriodSeconds"] >= needed


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_each_region_is_a_release_that_charges_its_own_slices(region: str) -> None:
    """A region's values layered on production's: its region, its AWS region, and its
    own IRSA roles, named as that region's terraform names them."""
    manifests = render("values-prod.yaml", "-f", str(CHART / f"values-region-{region}.yaml"))
    config = by_kind(manifests, "ConfigMap")["maas-config"]["data"]
    assert config["MAAS_REGION"] == config["MAAS_AWS_REGION"] == region
    tfvars = (TERRAFORM / "environments" / f"{region}.tfvars").read_text()
    short = re.search(r'region_short\s*=\s*"(\w+)"', tfvars)
    assert short is not None
    for account in by_kind(manifests, "ServiceAccount").values():
        role = account["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
        if role:
            assert role.endswith(f"/maas-{short.group(1)}-{account['metadata']['name'][5:]}")
