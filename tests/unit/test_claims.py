"""Tokens shaped like each identity provider's map to the right account and roles."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from shared.auth import Authenticator, issue_dev_token
from shared.claims import ClaimsError, ClaimsMapping, claim_at
from shared.errors import ApiError
from shared.settings import Settings

SECRET = "unit-test-secret-of-at-least-32-bytes"
REFERENCE_USER = "65a1f0c2e4b0a1b2c3d4e5f6"  # a MongoDB ObjectId, as the reference issues


def signed(claims: dict[str, Any]) -> str:
    return jwt.encode({**claims, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")


def authenticator(**mapping: Any) -> Authenticator:
    return Authenticator(Settings(jwt_secret=SECRET, **mapping))


PROVIDERS = [
    pytest.param(
        {"jwt_roles_claim": "realm_access.roles", "jwt_role_map": {"meme-ai": "ai"}},
        {
            "sub": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "preferred_username": "alice",
            "realm_access": {"roles": ["offline_access", "meme-ai", "admin"]},
            "scope": "openid profile",
        },
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        {"ai"},
        id="keycloak",
    ),
    pytest.param(
        {"jwt_roles_claim": "permissions", "jwt_role_map": {"generate:ai-memes": "ai"}},
        {
            "sub": "auth0|64f1c2d3e4b5a6978812abcd",
            "permissions": ["read:memes", "generate:ai-memes"],
            "scope": "openid generate:ai-memes",
        },
        "auth0|64f1c2d3e4b5a6978812abcd",
        {"ai"},
        id="auth0",
    ),
    pytest.param(
        {"jwt_roles_claim": "scope", "jwt_role_map": {"maas/ai": "ai", "maas/admin": "admin"}},
        {"sub": "client-7f3a", "scope": "maas/ai maas/admin openid"},
        "client-7f3a",
        {"ai", "admin"},
        id="oauth-scope-string",
    ),
    pytest.param(
        {"jwt_roles_claim": "cognito:groups"},
        {
            "sub": "94a8e4d8-2071-70c5-9b52-8d0f4c7e3b11",
            "cognito:groups": ["ai"],
            "cognito:username": "alice",
            "token_use": "id",
        },
        "94a8e4d8-2071-70c5-9b52-8d0f4c7e3b11",
        {"ai"},
        id="cognito",
    ),
    pytest.param(
        {"jwt_roles_claim": "groups", "jwt_role_map": {"MaaS AI": "ai", "Everyone": "default"}},
        {"sub": "00u1a2b3c4D5E6F7G8h9", "groups": ["Everyone", "MaaS AI", "Admins"]},
        "00u1a2b3c4D5E6F7G8h9",
        {"ai", "default"},
        id="okta",
    ),
    pytest.param(
        {
            "jwt_account_claim": "user_id",
            "jwt_roles_claim": "permissions",
            "jwt_role_map": {"GenerateLlmMeme": "ai"},
        },
        {
            "user_id": REFERENCE_USER,
            "email": "alice@example.com",
            "permissions": {"GenerateLlmMeme": True, "DeleteEverything": True},
        },
        REFERENCE_USER,
        {"ai"},
        id="reference",
    ),
]


@pytest.mark.parametrize(("mapping", "claims", "account", "roles"), PROVIDERS)
async def test_each_providers_token_names_its_account_and_roles(
    mapping: dict[str, Any], claims: dict[str, Any], account: str, roles: set[str]
) -> None:
    principal = await authenticator(**mapping).authenticate(f"Bearer {signed(claims)}")
    assert (principal.account, principal.roles) == (account, frozenset(roles))


@pytest.mark.parametrize(("mapping", "claims", "account", "roles"), PROVIDERS)
async def test_dev_tokens_follow_the_same_mapping(
    mapping: dict[str, Any], claims: dict[str, Any], account: str, roles: set[str]
) -> None:
    settings = Settings(jwt_secret=SECRET, **mapping)
    token = issue_dev_token(settings, account, sorted(roles), 60)
    principal = await Authenticator(settings).authenticate(f"Bearer {token}")
    assert (principal.account, principal.roles) == (account, frozenset(roles))


async def test_a_permission_set_to_false_grants_nothing() -> None:
    auth = authenticator(
        jwt_account_claim="user_id",
        jwt_roles_claim="permissions",
        jwt_role_map={"GenerateLlmMeme": "ai"},
    )
    token = signed({"user_id": REFERENCE_USER, "permissions": {"GenerateLlmMeme": False}})
    assert (await auth.authenticate(f"Bearer {token}")).roles == frozenset()


async def test_only_names_in_the_table_grant_roles() -> None:
    token = signed({"sub": "alice", "roles": "ai admin owner"})
    dev = await authenticator().authenticate(f"Bearer {token}")
    assert dev.roles == frozenset({"ai", "admin"})  # the dev table names MaaS's own roles
    mapped = await authenticator(jwt_role_map={"owner": "ai"}).authenticate(f"Bearer {token}")
    assert mapped.roles == frozenset({"ai"})
    empty = await authenticator(jwt_role_map={}).authenticate(f"Bearer {token}")
    assert empty.roles == frozenset()


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": "alice"}, "'user_id' claim"),
        ({"user_id": 12345}, "'user_id' claim"),
        ({"user_id": "not an id!"}, "not an account id"),
        ({"user_id": REFERENCE_USER, "permissions": {"GenerateLlmMeme": "yes"}}, "permissions"),
        ({"user_id": REFERENCE_USER, "permissions": [1, 2]}, "permissions"),
    ],
)
async def test_claims_that_name_no_account_or_roles_are_401(
    claims: dict[str, Any], message: str
) -> None:
    auth = authenticator(jwt_account_claim="user_id", jwt_roles_claim="permissions")
    with pytest.raises(ApiError) as caught:
        await auth.authenticate(f"Bearer {signed(claims)}")
    assert caught.value.status == 401
    assert message in caught.value.message


def test_a_claim_with_dots_in_its_name_is_found_whole() -> None:
    claims = {"https://maas.example/roles": ["ai"], "realm_access": {"roles": ["x"]}}
    assert claim_at(claims, "https://maas.example/roles") == ["ai"]
    assert claim_at(claims, "realm_access.roles") == ["x"]
    assert claim_at(claims, "realm_access.missing") is None


def test_a_missing_roles_claim_grants_no_role() -> None:
    assert ClaimsMapping(roles_claim="groups").roles({"sub": "a"}) == frozenset()
    with pytest.raises(ClaimsError):
        ClaimsMapping().account({"sub": None})
