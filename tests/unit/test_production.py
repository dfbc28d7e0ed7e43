"""Production settings that are only safe on a developer's machine are named and refused."""

from __future__ import annotations

from typing import Any

import pytest

from shared.production import Service, unsafe_settings
from shared.settings import DEV_JWT_SECRET, Settings

SAFE: dict[str, Any] = {
    "env": "prod",
    "jwt_secret": "a-production-secret-that-is-long-enough-0123",
    "sqs_endpoint_url": None,
    "aws_access_key_id": None,
    "aws_secret_access_key": None,
}


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
        ({"jwt_jwks_url": "http://idp.example/jwks"}, "MAAS_JWT_JWKS_URL must be an https"),
        ({"jwt_jwks_url": "https://169.254.169.254/x"}, "MAAS_JWT_JWKS_URL must not point"),
        ({"jwt_jwks_url": "https://localhost/jwks"}, "MAAS_JWT_JWKS_URL must not point"),
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


@pytest.mark.parametrize("claim", ["email", "preferred_username", "profile.Email", "upn"])
def test_an_account_claim_that_can_change_hands_is_refused(claim: str) -> None:
    (problem,) = problems("gateway", jwt_account_claim=claim)
    assert problem.startswith(f"MAAS_JWT_ACCOUNT_CLAIM is {claim!r}")


@pytest.mark.parametrize("claim", ["sub", "user_id", "oid", "custom:account"])
def test_immutable_account_claims_start(claim: str) -> None:
    assert problems("gateway", jwt_account_claim=claim) == []


def test_a_jwks_url_makes_the_secret_irrelevant() -> None:
    assert problems("gateway", jwt_secret=DEV_JWT_SECRET, jwt_jwks_url="https://idp/jwks") == []


def test_the_ledger_verifies_console_tokens_so_it_refuses_the_dev_secret() -> None:
    assert problems("ledger", jwt_secret=DEV_JWT_SECRET)
    assert problems("ledger", jwt_secret=DEV_JWT_SECRET, jwt_jwks_url="https://idp/jwks") == []
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


def test_development_is_not_checked() -> None:
    assert unsafe_settings(Settings(env="dev", jwt_secret=DEV_JWT_SECRET), "gateway") == []
