"""Every setting of shared/settings.py reaches the pods: ConfigMap, Secret, or a documented
allow-list; the rendered ConfigMap parses with the real Settings class."""

from __future__ import annotations

import pytest

from shared.production import Service, unsafe_settings
from shared.settings import Settings, env_names
from shared.tracing import OTEL_SETTINGS
from tests.infra.conftest import ENVIRONMENTS, Manifest, by_kind, render

# Credentials: only ever from the Secret (secretKeyRef), never in the ConfigMap.
SECRET_FIELDS = {"jwt_secret", "openai_api_key", "google_api_key"}
# Not set in Kubernetes: IRSA gives the pods AWS credentials (ServiceAccount role ARN).
IRSA_FIELDS = {"aws_access_key_id", "aws_secret_access_key"}
# Optional settings whose default is None ("not configured"); an environment sets them in its
# values file when it uses them (prod sets the JWKS, issuer, audience and OpenAI endpoint).
OPTIONAL_FIELDS = {"jwt_jwks_url", "jwt_issuer", "jwt_audience", "geocoder_url", "openai_base_url"}
# Connection URLs: in the ConfigMap when they carry no credential (dev), else in the Secret.
URL_FIELDS = {"redis_url", "mongo_url", "cache_redis_url"}
# Read by some services only: the others need not have it.
ONLY_FOR = {"cache_redis_url": {"maas-meme"}}
# Where the balances and the ledger live: never given to the meme service (least privilege).
STORE_FIELDS = {"redis_url", "redis_cluster", "redis_max_connections", "mongo_url", "mongo_db"}
BOOKKEEPERS = {"maas-gateway", "maas-ledger"}
# Stand-ins for what the Secret holds, shaped like the real values.
SECRET_VALUES = {
    "jwt-secret": "x" * 48,
    "redis-url": "rediss://:token@maas-redis.abc123.use1.cache.amazonaws.com:6379/0",
    "cache-redis-url": "rediss://:token@maas-cache.abc123.use1.cache.amazonaws.com:6379/0",
    "mongo-url": "mongodb+srv://maas:password@maas.abc12.mongodb.net/?retryWrites=true",
    "openai-api-key": "sk-test",
    "google-api-key": "g-test",
}


def test_allow_lists_name_real_settings() -> None:
    fields = set(env_names())
    for group in (
        SECRET_FIELDS,
        IRSA_FIELDS,
        OPTIONAL_FIELDS,
        URL_FIELDS,
        STORE_FIELDS,
        set(ONLY_FOR),
    ):
        assert group <= fields
    for name in OPTIONAL_FIELDS:
        assert Settings.model_fields[name].default is None


def container_env(deployment: Manifest) -> tuple[set[str], dict[str, str]]:
    """(ConfigMaps referenced by envFrom, env var name -> Secret key from secretKeyRef)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    config_maps = {e["configMapRef"]["name"] for e in container.get("envFrom", [])}
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert all("value" not in e for e in container.get("env", [])), "inline env bypasses config"
    return config_maps, secrets


def pod_environment(manifests: list[Manifest], deployment: str) -> dict[str, str]:
    """What a pod of `deployment` sees: its ConfigMaps, and its Secret keys (stand-ins)."""
    config_maps = by_kind(manifests, "ConfigMap")
    names, secrets = container_env(by_kind(manifests, "Deployment")[deployment])
    env: dict[str, str] = {}
    for name in sorted(names):
        env.update(config_maps[name]["data"])
    return env | {name: SECRET_VALUES[key] for name, key in secrets.items()}


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_every_setting_reaches_every_service(
    rendered: dict[str, list[Manifest]], values_file: str
) -> None:
    names = env_names()
    config_maps = by_kind(rendered[values_file], "ConfigMap")
    data: dict[str, str] = {k: v for cm in config_maps.values() for k, v in cm["data"].items()}
    known = set(names.values()) | set(OTEL_SETTINGS)
    assert set(data) <= known, "ConfigMap key that no setting (or the tracing SDK) reads"
    for field in SECRET_FIELDS | IRSA_FIELDS:
        assert names[field] not in data, f"{names[field]} must not be in a ConfigMap"
    required = {names[f] for f in names if f not in SECRET_FIELDS | IRSA_FIELDS | OPTIONAL_FIELDS}
    only_for = ONLY_FOR | dict.fromkeys(STORE_FIELDS, BOOKKEEPERS)
    for name, deployment in by_kind(rendered[values_file], "Deployment").items():
        config_names, secret_env = container_env(deployment)
        assert config_names <= set(config_maps)
        from_config = {k for cm in config_names for k in config_maps[cm]["data"]}
        available = from_config | set(secret_env)
        needed = required - {names[f] for f, only in only_for.items() if name not in only}
        assert needed - available == set(), f"{name} misses settings"
        assert not (from_config & set(secret_env)), f"{name}: a setting in ConfigMap and Secret"
        assert not (set(secret_env) & {names[f] for f in IRSA_FIELDS}), "use IRSA, not AWS keys"


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_the_meme_service_gets_no_balance_or_ledger_settings(
    rendered: dict[str, list[Manifest]], values_file: str
) -> None:
    names = env_names()
    meme = pod_environment(rendered[values_file], "maas-meme")
    assert {names[f] for f in STORE_FIELDS} & set(meme) == set()
    for bookkeeper in BOOKKEEPERS:
        env = pod_environment(rendered[values_file], bookkeeper)
        assert {names["redis_url"], names["mongo_url"]} <= set(env)


def test_prod_takes_credentials_from_the_secret(rendered: dict[str, list[Manifest]]) -> None:
    names = env_names()
    deployments = by_kind(rendered["values-prod.yaml"], "Deployment")
    secret_env = {name: set(container_env(d)[1]) for name, d in deployments.items()}
    for bookkeeper in BOOKKEEPERS:
        assert {names["redis_url"], names["mongo_url"]} <= secret_env[bookkeeper]
    assert names["cache_redis_url"] in secret_env["maas-meme"]
    assert names["openai_api_key"] in secret_env["maas-meme"]
    assert names["jwt_secret"] not in secret_env["maas-meme"]


@pytest.mark.parametrize("values_file", ["values.yaml", "values-prod.yaml"])
def test_the_charts_production_values_pass_each_services_own_checks(
    values_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pod's environment, as rendered, passes the check its service runs at start."""
    manifests = render(values_file, "--set", "image.tag=abc")
    for env in env_names().values():
        monkeypatch.delenv(env, raising=False)
    services: tuple[Service, ...] = ("gateway", "ledger", "meme")
    for service in services:
        with monkeypatch.context() as pod:
            for key, value in pod_environment(manifests, f"maas-{service}").items():
                pod.setenv(key, value)
            settings = Settings()
            assert settings.env == "prod"
            assert unsafe_settings(settings, service) == [], service


@pytest.mark.parametrize("values_file", ENVIRONMENTS)
def test_config_map_parses_with_the_settings_module(
    rendered: dict[str, list[Manifest]], values_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = env_names()
    for env in names.values():
        monkeypatch.delenv(env, raising=False)
    data = {
        k: v
        for cm in by_kind(rendered[values_file], "ConfigMap").values()
        for k, v in cm["data"].items()
    }
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
