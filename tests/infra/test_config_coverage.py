"""Every setting of shared/settings.py reaches the pods: ConfigMap, Secret, or a documented
allow-list; the rendered ConfigMap parses with the real Settings class."""

from __future__ import annotations

from typing import Any

import pytest

from shared.settings import Settings, env_names
from tests.infra.conftest import ENVIRONMENTS, Manifest, by_kind

# Credentials: only ever from the Secret (secretKeyRef), never in the ConfigMap.
SECRET_FIELDS = {"jwt_secret", "openai_api_key", "google_api_key"}
# Not set in Kubernetes: IRSA gives the pods AWS credentials (ServiceAccount role ARN).
IRSA_FIELDS = {"aws_access_key_id", "aws_secret_access_key"}
# Optional settings whose default is None ("not configured"); an environment sets them in its
# values file when it uses them (prod sets the JWKS, issuer, audience and OpenAI endpoint).
OPTIONAL_FIELDS = {"jwt_jwks_url", "jwt_issuer", "jwt_audience", "geocoder_url", "openai_base_url"}
# Connection URLs: in the ConfigMap when they carry no credential (dev), else in the Secret.
URL_FIELDS = {"redis_url", "mongo_url", "cache_redis_url"}
# Read by one service only: the others need not have it.
ONLY_FOR = {"cache_redis_url": "maas-meme"}


def test_allow_lists_name_real_settings() -> None:
    fields = set(env_names())
    for group in (SECRET_FIELDS, IRSA_FIELDS, OPTIONAL_FIELDS, URL_FIELDS, set(ONLY_FOR)):
        assert group <= fields
    for name in OPTIONAL_FIELDS:
        assert Settings.model_fields[name].default is None


def container_env(deployment: Manifest) -> tuple[set[str], set[str]]:
    """(ConfigMaps referenced by envFrom, env var names from secretKeyRef)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    config_maps = {e["configMapRef"]["name"] for e in container.get("envFrom", [])}
    secrets = {
        e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert all("value" not in e for e in container.get("env", [])), "inline env bypasses config"
    return config_maps, secrets


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_every_setting_reaches_every_service(
    rendered: dict[str, list[Manifest]], values_file: str
) -> None:
    names = env_names()
    (config_map,) = by_kind(rendered[values_file], "ConfigMap").values()
    data: dict[str, str] = config_map["data"]
    assert set(data) <= set(names.values()), "ConfigMap key that no setting reads"
    for field in SECRET_FIELDS | IRSA_FIELDS:
        assert names[field] not in data, f"{names[field]} must not be in a ConfigMap"
    required = {names[f] for f in names if f not in SECRET_FIELDS | IRSA_FIELDS | OPTIONAL_FIELDS}
    for name, deployment in by_kind(rendered[values_file], "Deployment").items():
        config_maps, secret_env = container_env(deployment)
        assert config_maps == {config_map["metadata"]["name"]}
        available = set(data) | secret_env
        needed = required - {names[f] for f, only in ONLY_FOR.items() if only != name}
        assert needed - available == set(), f"{name} misses settings"
        assert not (set(data) & secret_env), f"{name}: a setting in both ConfigMap and Secret"
        assert not (secret_env & {names[f] for f in IRSA_FIELDS}), "use IRSA, not AWS keys"


def test_prod_takes_credentials_from_the_secret(rendered: dict[str, list[Manifest]]) -> None:
    names = env_names()
    deployments = by_kind(rendered["values-prod.yaml"], "Deployment")
    secret_env = {name: container_env(d)[1] for name, d in deployments.items()}
    for env in secret_env.values():
        assert {names["redis_url"], names["mongo_url"]} <= env
    assert names["cache_redis_url"] in secret_env["maas-meme"]
    assert names["openai_api_key"] in secret_env["maas-meme"]
    assert names["jwt_secret"] not in secret_env["maas-meme"]


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_config_map_parses_with_the_settings_module(
    rendered: dict[str, list[Manifest]], values_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = env_names()
    for env in names.values():
        monkeypatch.delenv(env, raising=False)
    (config_map,) = by_kind(rendered[values_file], "ConfigMap").values()
    data: dict[str, Any] = config_map["data"]
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    defaults = Settings.model_construct()
    # Queue topology and prices in the cluster are the code's (and Terraform's) values.
    for field in (
        "queue_name",
        "dlq_name",
        "max_receive_count",
        "visibility_timeout_s",
        "message_retention_s",
        "dlq_retention_s",
        "price_text",
        "price_ai",
    ):
        assert getattr(settings, field) == getattr(defaults, field), field
    # Services listen on all interfaces inside a pod, on their standard ports.
    assert (settings.gateway_host, settings.gateway_port) == ("0.0.0.0", 8080)
    assert (settings.meme_host, settings.meme_port) == ("0.0.0.0", 8081)
    assert (settings.ledger_host, settings.ledger_port) == ("0.0.0.0", 8082)
    assert settings.meme_url.endswith(":8081")
    assert settings.env == values_file.removeprefix("values-").removesuffix(".yaml")
