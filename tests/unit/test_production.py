"""Production settings that are only safe on a developer's machine are named and refused."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from shared.production import Service, unsafe_settings
from shared.settings import DEV_JWT_SECRET, Settings

SAFE: dict[str, Any] = {
    "env": "prod",
    "jwt_secret": "a-production-secret-that-is-long-enough-0123",
    "jwt_role_map": {"maas-ai": "ai", "maas-admins": "admin"},
    "sqs_endpoint_url": None,
    "aws_access_key_id": None,
    "aws_secret_access_key": None,
}


IDP = {"jwt_issuer": "https://idp.example/", "jwt_audience": "maas-api"}


def problems(service: Service, **overrides: Any) -> list[str]:
    return unsafe_settings(Settings(**{**SAFE, **overrides}), service)


@pytest.mark.parametrize("service", ["gateway", "ledger", "meme"])
def test_a_safe_production_setup_starts(service: Service) -> None:
    assert problems(service) == []


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"jwt_secret": DEV_JWT_SECRET}, "MAAS_JWT_SECRET is the committed dev secret"),
        ({"jwt_secret": "x" * 31}, "MAAS_JWT_SECRET is shorter than 32 bytes"),
        ({"jwt_secret": ""}, "MAAS_JWT_SECRET is shorter than 32 bytes"),
        ({"jwt_jwks_url": "http://idp.example/jwks", **IDP}, "MAAS_JWT_JWKS_URL must be an https"),
        ({"jwt_jwks_url": "https://169.254.169.254/x", **IDP}, "MAAS_JWT_JWKS_URL must not point"),
        ({"jwt_jwks_url": "https://localhost/jwks", **IDP}, "MAAS_JWT_JWKS_URL must not point"),
        (
            {"jwt_jwks_url": "https://idp/jwks", "jwt_audience": "maas-api"},
            "MAAS_JWT_ISSUER must be set when tokens are verified with MAAS_JWT_JWKS_URL",
        ),
        (
            {"jwt_jwks_url": "https://idp/jwks", "jwt_issuer": "https://idp/"},
            "MAAS_JWT_AUDIENCE must be set when tokens are verified with MAAS_JWT_JWKS_URL",
        ),
        ({"jwt_roles_claim": "custom:roles"}, "MAAS_JWT_ROLES_CLAIM is 'custom:roles'"),
        ({"jwt_role_map": {}}, "MAAS_JWT_ROLE_MAP must be set in production"),
        ({"sqs_endpoint_url": "http://127.0.0.1:4566"}, "MAAS_SQS_ENDPOINT_URL points at loop"),
        ({"sqs_endpoint_url": "http://localhost:4566"}, "MAAS_SQS_ENDPOINT_URL points at loop"),
        (
            {"aws_access_key_id": "test", "aws_secret_access_key": "test"},
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are LocalStack's test keys",
        ),
    ],
)
@pytest.mark.parametrize("service", ["gateway", "ledger"])
def test_each_unsafe_gateway_or_ledger_setting_is_named(
    overrides: dict[str, Any], names: str, service: Service
) -> None:
    (problem,) = problems(service, **overrides)
    assert problem.startswith(names)


@pytest.mark.parametrize(
    "claim",
    [
        "email",
        "preferred_username",
        "profile.Email",
        "upn",
        "https://maas.example/email",  # Auth0 namespaced claims are filled from profiles
        "custom:email",  # Cognito custom attributes are user-writable by default
        "custom:account",
        "mail",
        "unique_name",
        "login",
        "emails",
        "SUB",
    ],
)
@pytest.mark.parametrize("service", ["gateway", "ledger"])
def test_an_account_claim_off_the_immutable_list_is_refused(claim: str, service: Service) -> None:
    (problem,) = problems(service, jwt_account_claim=claim)
    assert problem.startswith(f"MAAS_JWT_ACCOUNT_CLAIM is {claim!r}")


@pytest.mark.parametrize("claim", ["sub", "user_id", "oid", "uid"])
def test_immutable_account_claims_start(claim: str) -> None:
    assert problems("gateway", jwt_account_claim=claim) == []


@pytest.mark.parametrize("claim", ["custom:roles", "https://maas.example/roles", "role", "email"])
def test_a_roles_claim_a_user_can_edit_is_refused(claim: str) -> None:
    (problem,) = problems("gateway", jwt_roles_claim=claim)
    assert problem.startswith(f"MAAS_JWT_ROLES_CLAIM is {claim!r}")


@pytest.mark.parametrize(
    "claim",
    ["roles", "groups", "permissions", "scope", "scp", "realm_access.roles", "cognito:groups",
     "resource_access.maas-api.roles"],
)  # fmt: skip
def test_administered_roles_claims_start(claim: str) -> None:
    assert problems("gateway", jwt_roles_claim=claim) == []


def test_the_dev_role_map_is_not_a_production_one() -> None:
    settings = {key: value for key, value in SAFE.items() if key != "jwt_role_map"}
    (problem,) = unsafe_settings(Settings(**settings), "gateway")
    assert problem.startswith("MAAS_JWT_ROLE_MAP must be set in production")


def test_rate_limits_without_a_default_are_refused() -> None:
    (problem,) = problems("gateway", rate_limits={"ai": {"rate": 10, "burst": 10}})
    assert problem.startswith("MAAS_RATE_LIMITS has no 'default' entry")


def test_a_jwks_url_with_issuer_and_audience_makes_the_secret_irrelevant() -> None:
    jwks = {"jwt_jwks_url": "https://idp/jwks", **IDP}
    assert problems("gateway", jwt_secret=DEV_JWT_SECRET, **jwks) == []


def test_the_ledger_verifies_console_tokens_so_it_refuses_the_dev_secret() -> None:
    jwks = {"jwt_jwks_url": "https://idp/jwks", **IDP}
    assert problems("ledger", jwt_secret=DEV_JWT_SECRET)
    assert problems("ledger", jwt_secret=DEV_JWT_SECRET, **jwks) == []
    assert problems("ledger", jwt_secret=DEV_JWT_SECRET, jwt_jwks_url="https://idp/jwks")
    assert problems("ledger", sqs_endpoint_url="http://[::1]:4566")


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"OPENAI_BASE_URL": "http://api.example/v1"}, "OPENAI_BASE_URL must be an https"),
        ({"OPENAI_BASE_URL": "https://[fd00:ec2::254]/v1"}, "OPENAI_BASE_URL must not point"),
        ({"geocoder_url": "file:///etc/passwd"}, "MAAS_GEOCODER_URL must be an https"),
        (
            {
                "geocoder": "nominatim",
                "cache_redis_url": "redis://r:6379/1",
                "redis_url": "redis://r:6379/0",
            },
            "MAAS_CACHE_REDIS_URL must name another Redis instance",
        ),
    ],
)
def test_each_unsafe_meme_setting_is_named(overrides: dict[str, Any], names: str) -> None:
    (problem,) = problems("meme", **overrides)
    assert problem.startswith(names)


@pytest.mark.parametrize(
    "host",
    [
        "127.1",
        "2130706433",
        "0x7f.1",
        "0.0.0.0",
        "[::]",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "169.254.169.254",
        "metadata.google.internal.",
        "metadata.google.internal",
        "LOCALHOST.",
        "10.0.0.7",
        "192.168.1.1",
        "[fd00:ec2::254]",
    ],
)
def test_no_spelling_of_an_internal_host_passes_the_url_guard(host: str) -> None:
    (problem,) = problems("meme", OPENAI_BASE_URL=f"https://{host}/v1")
    assert problem.startswith("OPENAI_BASE_URL must not point at")


def test_a_name_is_judged_by_the_addresses_it_resolves_to() -> None:
    """This machine's own name resolves (through /etc/hosts) to one of its addresses."""
    host = socket.gethostname()
    (problem,) = problems("meme", geocoder_url=f"https://{host}/search")
    assert problem.startswith("MAAS_GEOCODER_URL must not point at a ")
    assert f"({host} is " in problem
    assert problems("meme", geocoder_url="https://8.8.8.8/search") == []


def test_development_is_not_checked() -> None:
    assert unsafe_settings(Settings(env="dev", jwt_secret=DEV_JWT_SECRET), "gateway") == []
