"""Production refuses to start on a setup that is only safe on a developer's machine.

The settings' defaults suit a local run: a committed dev JWT secret, LocalStack on
loopback with its `test` keys, plain-HTTP endpoints. Under `MAAS_ENV=prod` each of
them is a way in (anyone can mint an admin token) or a way out (a URL that reaches
the instance metadata service), so a service names each offending setting, one line
each, and exits instead of serving.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Literal
from urllib.parse import urlsplit

from shared.settings import DEV_JWT_SECRET, Settings, env_names

Service = Literal["gateway", "meme", "ledger"]

MIN_SECRET_BYTES = 32
LOCALSTACK_KEYS = ("test", "test")
# Claims that name one user for good: the provider sets them, no user can edit them, and
# they are never given to someone else. Names, addresses and provider attributes a user
# writes (`email`, `custom:*` in Cognito, namespaced claims filled from profiles) are not.
IMMUTABLE_ACCOUNT_CLAIMS = {
    "sub": "every OpenID Connect provider (Entra ID: per application)",
    "oid": "Entra ID: the user's object id in the tenant",
    "uid": "Okta access tokens: the user's id",
    "user_id": "Firebase / Identity Platform (= sub); the reference implementation's ObjectId",
}
# Claims only the provider's administrators fill: roles, groups, permissions and granted
# scopes. A user who can edit a claim must not be able to grant a role with it.
ADMINISTERED_ROLES_CLAIMS = {
    "roles": "Entra ID app roles; Firebase custom claims (set by the Admin SDK only)",
    "groups": "Okta, Entra ID",
    "permissions": "Auth0 RBAC",
    "scope": "OAuth 2.0 scopes the authorization server granted",
    "scp": "Okta and Entra ID access-token scopes",
    "realm_access.roles": "Keycloak realm roles",
    "cognito:groups": "Amazon Cognito user-pool groups",
}
# Keycloak client roles: resource_access.<client id>.roles.
KEYCLOAK_CLIENT_ROLES = ("resource_access.", ".roles")
# Names that reach a cloud's metadata service without an address to classify.
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})
EXIT_UNSAFE = 78  # EX_CONFIG: a configuration error, not a crash to restart quickly

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _env(field: str) -> str:
    return env_names()[field]


def host_addresses(host: str) -> list[Address]:
    """Every address `host` stands for, as a connection to it would see it.

    Names and literals both go through the C library's resolver, which reads `127.1`,
    `2130706433` and `0x7f.1` as 127.0.0.1, as a connection would. A name that does not
    resolve here gives no address: it is judged by its name alone.
    """
    host = host.strip("[]").rstrip(".")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def internal_address(address: Address) -> str | None:
    """Why a connection to `address` stays inside the machine or its network, if it does."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES or address.is_link_local:
        return "link-local (cloud metadata)"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified (this host)"
    if address.is_private or address.is_reserved or address.is_multicast:
        return "private"
    return None


def is_loopback(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return True
    this_host = ("loopback", "unspecified (this host)")
    return any(internal_address(address) in this_host for address in host_addresses(host))


def url_problem(field: str, url: str | None) -> str | None:
    """An outbound URL from settings: https, to a host on the public internet.

    Its host is resolved and every address it gives is classified, so no spelling of
    loopback, metadata or a private network gets through (SSRF through settings).
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f"{_env(field)} is not a URL: {url!r}"
    if parts.scheme != "https" or not host:
        return f"{_env(field)} must be an https:// URL in production, not {url!r}"
    name = host.rstrip(".").lower()
    if name in METADATA_NAMES or name == "localhost" or name.endswith(".localhost"):
        return f"{_env(field)} must not point at an internal host ({host})"
    for address in host_addresses(host):
        if reason := internal_address(address):
            return f"{_env(field)} must not point at a {reason} address ({host} is {address})"
    return None


def _claim_problems(settings: Settings) -> list[str]:
    """Only claims a user cannot edit may name the account or grant a role."""
    problems = []
    account = settings.jwt_account_claim
    if account not in IMMUTABLE_ACCOUNT_CLAIMS:
        problems.append(
            f"{_env('jwt_account_claim')} is {account!r}, which is not an immutable user id "
            f"({', '.join(IMMUTABLE_ACCOUNT_CLAIMS)}): a user who can change it, or inherit it, "
            "takes over the account and its tokens (docs/security.md lists each provider's)"
        )
    roles = settings.jwt_roles_claim
    client_roles = roles.startswith(KEYCLOAK_CLIENT_ROLES[0]) and roles.endswith(
        KEYCLOAK_CLIENT_ROLES[1]
    )
    if roles not in ADMINISTERED_ROLES_CLAIMS and not client_roles:
        problems.append(
            f"{_env('jwt_roles_claim')} is {roles!r}, which is not a claim only the provider's "
            f"administrators fill ({', '.join(ADMINISTERED_ROLES_CLAIMS)}, "
            "resource_access.<client>.roles): a user who can edit it grants themselves admin"
        )
    if "jwt_role_map" not in settings.model_fields_set or not settings.jwt_role_map:
        problems.append(
            f"{_env('jwt_role_map')} must be set in production to the table of the provider's "
            'names that grant MaaS roles, e.g. {"maas-admins": "admin", "GenerateLlmMeme": "ai"}: '
            "no other name grants anything"
        )
    return problems


def _jwt_problems(settings: Settings) -> list[str]:
    return _claim_problems(settings) + _signing_problems(settings)


def _signing_problems(settings: Settings) -> list[str]:
    if settings.jwt_jwks_url:
        problems = [
            f"{_env(field)} must be set when tokens are verified with {_env('jwt_jwks_url')}: "
            f"without it a token the provider issued to {what} is accepted"
            for field, what in (
                ("jwt_issuer", "another tenant or realm"),
                ("jwt_audience", "any other application"),
            )
            if not getattr(settings, field)
        ]
        if problem := url_problem("jwt_jwks_url", settings.jwt_jwks_url):
            problems.append(problem)
        return problems
    secret, name = settings.jwt_secret, _env("jwt_secret")
    if secret == DEV_JWT_SECRET:
        return [
            f"{name} is the committed dev secret: set {_env('jwt_jwks_url')}, or {name} "
            f"to a random secret of at least {MIN_SECRET_BYTES} bytes"
        ]
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return [f"{name} is shorter than {MIN_SECRET_BYTES} bytes"]
    return []


def _rate_limit_problems(settings: Settings) -> list[str]:
    if "default" in settings.rate_limits:
        return []
    return [
        f"{_env('rate_limits')} has no 'default' entry: every caller without a listed role "
        "would go unlimited"
    ]


def _sqs_problems(settings: Settings) -> list[str]:
    problems = []
    keys = (settings.aws_access_key_id, settings.aws_secret_access_key)
    if keys == LOCALSTACK_KEYS:
        problems.append(
            f"{_env('aws_access_key_id')}/{_env('aws_secret_access_key')} are LocalStack's "
            "test keys: use the pod's IAM role or real credentials"
        )
    endpoint = settings.sqs_endpoint_url
    if endpoint is not None and is_loopback(urlsplit(endpoint).hostname or ""):
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
    if service == "gateway":
        return _jwt_problems(settings) + _sqs_problems(settings) + _rate_limit_problems(settings)
    if service == "ledger":  # the ledger's console verifies admin tokens
        return _jwt_problems(settings) + _sqs_problems(settings)
    return _meme_problems(settings)


def checked_settings(service: Service) -> Settings:
    """The settings from the environment; in production, only if they are safe."""
    settings = Settings()
    refuse_unsafe_production(settings, service)
    return settings


def refuse_unsafe_production(settings: Settings, service: Service) -> None:
    """Exit with one clear line per problem before anything is served."""
    problems = unsafe_settings(settings, service)
    for problem in problems:
        print(f"maas-{service}: refusing to start in production: {problem}", file=sys.stderr)
    if problems:
        sys.exit(EXIT_UNSAFE)
