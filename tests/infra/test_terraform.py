"""Terraform parsed with python-hcl2: the queues equal shared/settings.py, so infra and code
cannot drift; the rest of the module keeps its promises (encryption, least privilege)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from shared.settings import Settings
from tests.infra.tools import TERRAFORM, hcl2_pythonpath, run, venv_bin

PARSE = """
import json, sys
from pathlib import Path
import hcl2
def clean(node):
    # python-hcl2 8 adds __is_block__ and __comments__ keys; the tests look at HCL only.
    if isinstance(node, dict):
        return {k: clean(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [clean(v) for v in node]
    return node
root = Path(sys.argv[1])
files = sorted(root.glob("*.tf")) + sorted(root.glob("environments/*.tfvars"))
out = {str(p.relative_to(root)): clean(hcl2.load(p.open())) for p in files}
json.dump(out, sys.stdout)
"""


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals: '"abc"' -> 'abc'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def parsed() -> dict[str, dict[str, Any]]:
    result = run(
        [venv_bin("python"), "-c", PARSE, TERRAFORM],
        env={"PYTHONPATH": str(hcl2_pythonpath())},
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return data


def blocks(kind: str) -> dict[str, dict[str, Any]]:
    """`resource`/`data` blocks by "type.name", `variable`/`output` by name."""
    found: dict[str, dict[str, Any]] = {}
    for name, content in parsed().items():
        if not name.endswith(".tf"):
            continue
        for entry in content.get(kind, []):
            for first, body in entry.items():
                if kind in ("resource", "data"):
                    for second, inner in body.items():
                        found[f"{unquote(first)}.{unquote(second)}"] = inner
                else:
                    found[unquote(first)] = body
    return found


def variable_default(name: str) -> Any:
    return unquote(blocks("variable")[name]["default"])


def var_ref(value: Any) -> str:
    match = re.fullmatch(r"\$\{var\.(\w+)\}", str(value))
    assert match, f"{value!r} should be a plain variable reference"
    return match.group(1)


def test_queue_settings_equal_the_settings_module() -> None:
    settings = Settings()
    resources = blocks("resource")
    main, dlq = resources["aws_sqs_queue.main"], resources["aws_sqs_queue.dlq"]
    assert variable_default(var_ref(main["name"])) == settings.queue_name
    assert variable_default(var_ref(dlq["name"])) == settings.dlq_name
    assert main["fifo_queue"] is True
    assert dlq["fifo_queue"] is True
    assert settings.queue_name.endswith(".fifo")
    assert settings.dlq_name.endswith(".fifo")
    visibility = variable_default(var_ref(main["visibility_timeout_seconds"]))
    assert visibility == settings.visibility_timeout_s
    retention = variable_default(var_ref(main["message_retention_seconds"]))
    assert retention == settings.message_retention_s
    assert variable_default(var_ref(dlq["message_retention_seconds"])) == settings.dlq_retention_s
    # The relay sets its own deduplication ids (a hash of the packed event ids).
    assert main["content_based_deduplication"] is False


def test_high_throughput_fifo_mode() -> None:
    main = blocks("resource")["aws_sqs_queue.main"]
    assert unquote(main["deduplication_scope"]) == "messageGroup"
    assert unquote(main["fifo_throughput_limit"]) == "perMessageGroupId"


def test_redrive_policy_uses_max_receive_count_of_the_settings() -> None:
    resources = blocks("resource")
    policy = resources["aws_sqs_queue.main"]["redrive_policy"]
    assert policy.startswith("${jsonencode(")
    assert "deadLetterTargetArn = aws_sqs_queue.dlq.arn" in policy
    match = re.search(r"maxReceiveCount = var\.(\w+)", policy)
    assert match, policy
    assert variable_default(match.group(1)) == Settings().max_receive_count
    allow = resources["aws_sqs_queue_redrive_allow_policy.dlq"]
    assert allow["queue_url"] == "${aws_sqs_queue.dlq.id}"
    assert 'redrivePermission = "byQueue"' in allow["redrive_allow_policy"]
    assert "aws_sqs_queue.main.arn" in allow["redrive_allow_policy"]


def test_queues_are_encrypted() -> None:
    resources = blocks("resource")
    for name in ("aws_sqs_queue.main", "aws_sqs_queue.dlq"):
        assert resources[name]["sqs_managed_sse_enabled"] is True


def test_redis_is_a_durable_encrypted_cluster() -> None:
    redis = blocks("resource")["aws_elasticache_replication_group.redis"]
    assert var_ref(redis["num_node_groups"]) == "redis_num_node_groups"
    assert var_ref(redis["replicas_per_node_group"]) == "redis_replicas_per_node_group"
    assert redis["automatic_failover_enabled"] is True
    assert redis["multi_az_enabled"] is True
    assert redis["at_rest_encryption_enabled"] is True
    assert redis["transit_encryption_enabled"] is True
    assert var_ref(redis["auth_token"]) == "redis_auth_token"
    assert blocks("variable")["redis_auth_token"]["sensitive"] is True
    assert "default" not in blocks("variable")["redis_auth_token"]
    assert variable_default("redis_replicas_per_node_group") >= 1
    assert variable_default("redis_snapshot_retention_days") >= 1
    params = blocks("resource")["aws_elasticache_parameter_group.redis"]["parameter"]
    settings = {unquote(p["name"]): unquote(p["value"]) for p in params}
    assert settings == {"cluster-enabled": "yes", "maxmemory-policy": "noeviction"}


def test_the_cache_is_a_separate_evicting_instance() -> None:
    cache = blocks("resource")["aws_elasticache_replication_group.cache"]
    assert unquote(cache["parameter_group_name"]) == "${aws_elasticache_parameter_group.cache.name}"
    assert cache["at_rest_encryption_enabled"] is True
    assert cache["transit_encryption_enabled"] is True
    assert var_ref(cache["auth_token"]) == "cache_redis_auth_token"
    assert blocks("variable")["cache_redis_auth_token"]["sensitive"] is True
    params = blocks("resource")["aws_elasticache_parameter_group.cache"]["parameter"]
    settings = {unquote(p["name"]): unquote(p["value"]) for p in params}
    assert settings == {"maxmemory-policy": "allkeys-lru"}


def policy_actions(document: str) -> dict[str, set[str]]:
    """Actions per resource reference of an aws_iam_policy_document."""
    statements = blocks("data")[f"aws_iam_policy_document.{document}"]["statement"]
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert unquote(statement["effect"]) == "Allow"
        (resource,) = statement["resources"]
        assert "*" not in resource
        granted.setdefault(resource, set()).update(unquote(a) for a in statement["actions"])
    return granted


MAIN = "${aws_sqs_queue.main.arn}"
DLQ = "${aws_sqs_queue.dlq.arn}"


def test_gateway_may_only_send() -> None:
    assert policy_actions("gateway") == {
        MAIN: {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    }


def test_ledger_consumes_and_operates_the_dlq() -> None:
    granted = policy_actions("ledger")
    consume = {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    assert granted[MAIN] == consume | {"sqs:SendMessage"}
    assert granted[DLQ] == consume | {"sqs:StartMessageMoveTask"}
    assert set(granted) == {MAIN, DLQ}


def test_irsa_roles_trust_only_their_service_accounts() -> None:
    assume = blocks("data")["aws_iam_policy_document.assume"]
    (statement,) = assume["statement"]
    assert [unquote(a) for a in statement["actions"]] == ["sts:AssumeRoleWithWebIdentity"]
    subjects = [c for c in statement["condition"] if unquote(c["variable"]).endswith(":sub")]
    assert subjects, "the role must be bound to one ServiceAccount"
    assert "system:serviceaccount:" in str(subjects[0]["values"])


def test_mongo_cluster_is_sharded() -> None:
    cluster = blocks("resource")["mongodbatlas_advanced_cluster.maas"]
    assert unquote(cluster["cluster_type"]) == "SHARDED"
    assert cluster["backup_enabled"] is True


def test_outputs_feed_the_helm_values() -> None:
    outputs = set(blocks("output"))
    assert {
        "queue_url",
        "dlq_url",
        "redis_configuration_endpoint",
        "cache_redis_primary_endpoint",
        "gateway_role_arn",
        "ledger_role_arn",
        "mongo_srv_host",
    } <= outputs


def test_providers_are_pinned() -> None:
    (terraform,) = parsed()["versions.tf"]["terraform"]
    (providers,) = terraform["required_providers"]
    assert {"aws", "mongodbatlas"} <= set(providers)
    for spec in providers.values():
        assert re.fullmatch(r'"?\d+\.\d+\.\d+"?', str(spec["version"])), spec


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_region_tfvars_set_every_required_variable(region: str) -> None:
    tfvars = parsed()[f"environments/{region}.tfvars"]
    required = {
        name
        for name, body in blocks("variable").items()
        if "default" not in body and not body.get("sensitive")
    }
    assert required <= set(tfvars), required - set(tfvars)
    assert unquote(tfvars["region"]) == region
    assert set(tfvars) <= set(blocks("variable")), "tfvars sets an undeclared variable"
