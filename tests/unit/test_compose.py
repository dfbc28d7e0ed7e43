"""docker-compose.yml cannot run here, so it is checked against the settings module."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings, env_names
from shared.tracing import OTEL_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = Settings()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_the_stack_has_the_three_backends_and_the_three_services(compose: dict[str, Any]) -> None:
    backends = {"redis", "redis-cache", "mongo", "localstack"}
    assert set(compose["services"]) == backends | {"gateway", "meme", "ledger"}
    assert compose["services"]["redis"]["image"] == "redis:7"
    assert compose["services"]["redis-cache"]["image"] == "redis:7"
    assert compose["services"]["mongo"]["image"] == "mongo:7"
    assert compose["services"]["localstack"]["image"].startswith("localstack/localstack")


@pytest.mark.parametrize("name", ["gateway", "meme", "ledger"])
def test_each_service_runs_its_module_on_its_settings_port(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert importlib.util.find_spec(f"services.{name}.__main__") is not None
    port = getattr(DEFAULTS, f"{name}_port")
    assert service["ports"] == [f"{port}:{port}"]
    assert service["environment"][f"MAAS_{name.upper()}_PORT"] == str(port)


def test_every_environment_variable_is_a_setting_with_a_matching_value(
    compose: dict[str, Any],
) -> None:
    known = set(env_names().values()) | set(OTEL_SETTINGS)
    env = compose["x-maas-env"]
    assert set(env) <= known, f"unknown variables: {set(env) - known}"
    assert env["MAAS_QUEUE_NAME"] == DEFAULTS.queue_name
    assert env["MAAS_DLQ_NAME"] == DEFAULTS.dlq_name
    assert env["MAAS_MONGO_DB"] == DEFAULTS.mongo_db
    assert env["MAAS_REDIS_URL"].endswith(f":{DEFAULTS.redis_port}/0")
    assert env["MAAS_CACHE_REDIS_URL"] == "redis://redis-cache:6379/0"
    assert env["MAAS_MONGO_URL"].endswith(f":{DEFAULTS.mongo_port}")
    assert env["MAAS_SQS_ENDPOINT_URL"].endswith(f":{DEFAULTS.sqs_port}")
    assert env["MAAS_MEME_URL"].endswith(f":{DEFAULTS.meme_port}")


def test_backend_ports_are_the_settings_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["redis"]["ports"] == [f"{DEFAULTS.redis_port}:6379"]
    assert services["redis-cache"]["ports"] == [f"{DEFAULTS.cache_redis_port}:6379"]
    assert services["mongo"]["ports"] == [f"{DEFAULTS.mongo_port}:27017"]
    assert services["localstack"]["ports"] == [f"{DEFAULTS.sqs_port}:4566"]


def test_redis_keeps_every_balance(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command


def test_the_cache_evicts_and_never_persists(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis-cache"]["command"])
    assert "--maxmemory-policy allkeys-lru" in command
    assert "--maxmemory 256mb" in command
    assert "--appendonly no" in command


def test_the_localstack_hook_creates_the_queues_of_the_settings(compose: dict[str, Any]) -> None:
    mount = compose["services"]["localstack"]["volumes"][0]
    script = (ROOT / mount.split(":")[0]).read_text()
    assert mount.split(":")[1].startswith("/etc/localstack/init/ready.d/")
    assert f"--queue-name {DEFAULTS.queue_name}" in script
    assert f"--queue-name {DEFAULTS.dlq_name}" in script
    assert f'"VisibilityTimeout": "{DEFAULTS.visibility_timeout_s}"' in script
    assert f'"MessageRetentionPeriod": "{DEFAULTS.message_retention_s}"' in script
    assert f"MessageRetentionPeriod={DEFAULTS.dlq_retention_s}" in script
    receives = re.search(r'maxReceiveCount\\":\\"(\d+)', script)
    assert receives is not None
    assert int(receives.group(1)) == DEFAULTS.max_receive_count
