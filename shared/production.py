"""Production refuses to start on a setup that is only safe on a developer's machine.

The settings' defaults suit a local run: a committed dev JWT secret, LocalStack on
loopback with its `test` keys, plain-HTTP endpoints. Under `MAAS_ENV=prod` each of
them is a way in (anyone can mint an admin token) or a way out (a URL that reaches
the instance metadata service), so a service names the first offending setting in
one line and exits instead of serving.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Literal
from urllib.parse import urlsplit

from shared.settings import DEV_JWT_SECRET, Settings, env_names

Service = Literal["gateway", "meme", "ledger"]

MIN_SECRET_BYTES = 32
LOCALSTACK_KEYS = ("test", "test")
# Names, addresses and numbers that users edit or providers recycle.
REASSIGNABLE_CLAIMS = frozenset(
    {
        "email",
        "preferred_username",
        "username",
        "cognito:username",
        "name",
        "nickname",
        "upn",
        "phone_number",
    }
)
EXIT_UNSAFE = 78  # EX_CONFIG: a configuration error, not a crash to restart quickly


def _env(field: str) -> str:
    return env_names()[field]


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_link_local(host: str) -> bool:
    """Cloud metadata services (169.254.169.254, fd00:ec2::254) live here."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower() in ("metadata.google.internal", "metadata")
    return address.is_link_local or address == ipaddress.ip_address("fd00:ec2::254")


def url_problem(field: str, url: str | None) -> str | None:
    """An outbound URL from settings: https, and never loopback or a metadata address."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https" or not host:
        return f"{_env(field)} must be an https:// URL in production, not {url!r}"
    if _is_loopback(host) or _is_link_local(host):
        return f"{_env(field)} must not point at a loopback or link-local address ({host})"
    return None


def _account_claim_problems(settings: Settings) -> list[str]:
    """The account claim must be an identifier the provider never gives to someone else."""
    claim = settings.jwt_account_claim
    if claim.rsplit(".", 1)[-1].lower() not in REASSIGNABLE_CLAIMS:
        return []
    return [
        f"{_env('jwt_account_claim')} is {claim!r}, which a user can change or the provider "
        "can give to someone else (who would inherit the account and its tokens): use an "
        "immutable id such as 'sub'"
    ]


def _jwt_problems(settings: Settings) -> list[str]:
    return _account_claim_problems(settings) + _signing_problems(settings)


def _signing_problems(settings: Settings) -> list[str]:
    if settings.jwt_jwks_url:
        problem = url_problem("jwt_jwks_url", settings.jwt_jwks_url)
        return [problem] if problem else []
    secret, name = settings.jwt_secret, _env("jwt_secret")
    if secret == DEV_JWT_SECRET:
        return [
            f"{name} is the committed dev secret: set {_env('jwt_jwks_url')}, or {name} "
            f"to a random secret of at least {MIN_SECRET_BYTES} bytes"
        ]
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return [f"{name} is shorter than {MIN_SECRET_BYTES} bytes"]
    return []


def _sqs_problems(settings: Settings) -> list[str]:
    problems = []
    keys = (settings.aws_access_key_id, settings.aws_secret_access_key)
    if keys == LOCALSTACK_KEYS:
        problems.append(
            f"{_env('aws_access_key_id')}/{_env('aws_secret_access_key')} are LocalStack's "
            "test keys: use the pod's IAM role or real credentials"
        )
    endpoint = settings.sqs_endpoint_url
    if endpoint is not None and _is_loopback(urlsplit(endpoint).hostname or ""):
        problems.append(
            f"{_env('sqs_endpoint_url')} points at loopback ({endpoint}): set it empty for "
            "AWS SQS, or to the queue's VPC endpoint"
        )
    return problems


def _meme_problems(settings: Settings) -> list[str]:
    problems = [
        problem
        for field in ("openai_base_url", "geocoder_url")
        if (problem := url_problem(field, getattr(settings, field)))
    ]
    cache = settings.cache_redis_url
    shared = cache is not None and urlsplit(cache).netloc == urlsplit(settings.redis_url).netloc
    if settings.geocoder != "offline" and shared:
        problems.append(
            f"{_env('cache_redis_url')} must name another Redis instance than "
            f"{_env('redis_url')}: eviction policy and memory are per instance"
        )
    return problems


def unsafe_settings(settings: Settings, service: Service) -> list[str]:
    """What makes these settings unsafe for `service` in production (nothing elsewhere)."""
    if settings.env != "prod":
        return []
    if service in ("gateway", "ledger"):  # the ledger's console verifies admin tokens
        return _jwt_problems(settings) + _sqs_problems(settings)
    return _meme_problems(settings)


def refuse_unsafe_production(settings: Settings, service: Service) -> None:
    """Exit with one clear line per problem before anything is served."""
    problems = unsafe_settings(settings, service)
    for problem in problems:
        print(f"maas-{service}: refusing to start in production: {problem}", file=sys.stderr)
    if problems:
        sys.exit(EXIT_UNSAFE)
