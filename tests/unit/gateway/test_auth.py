"""JWT verification: every known attack is a 401, good tokens are cached."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from shared.auth import JWKS_FETCHES, Authenticator, issue_dev_token
from shared.errors import ApiError
from shared.settings import Settings
from tests.fakes.identity_provider import IdentityProvider

SETTINGS = Settings(jwt_secret="unit-test-secret-of-at-least-32-bytes")


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def rejected(auth: Authenticator, token: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await auth.authenticate(f"Bearer {token}")
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    return caught.value


async def test_a_good_token_gives_the_account_and_roles() -> None:
    principal = await Authenticator(SETTINGS).authenticate(
        f"Bearer {issue_dev_token(SETTINGS, 'alice', ['ai'], 60)}"
    )
    assert (principal.account, principal.roles) == ("alice", frozenset({"ai"}))


async def test_alg_none_is_rejected() -> None:
    now = int(time.time())
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': 'a', 'exp': now + 60})}."
    await rejected(Authenticator(SETTINGS), token)


async def test_a_tampered_payload_is_rejected() -> None:
    header, _, signature = issue_dev_token(SETTINGS, "alice", [], 60).split(".")
    forged = b64({"sub": "alice", "roles": ["admin"], "exp": int(time.time()) + 60})
    await rejected(Authenticator(SETTINGS), f"{header}.{forged}.{signature}")


async def test_another_secret_is_rejected() -> None:
    token = issue_dev_token(
        Settings(jwt_secret="someone-elses-secret-of-32-bytes-or-more"), "alice", [], 60
    )
    await rejected(Authenticator(SETTINGS), token)


async def test_expired_and_not_yet_valid_tokens_are_rejected() -> None:
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "a", "exp": now - 60}, "unit-test-secret-of-at-least-32-bytes", algorithm="HS256"
    )
    assert (await rejected(Authenticator(SETTINGS), expired)).message == "token expired"
    early = jwt.encode(
        {"sub": "a", "exp": now + 600, "nbf": now + 300},
        "unit-test-secret-of-at-least-32-bytes",
        algorithm="HS256",
    )
    await rejected(Authenticator(SETTINGS), early)


async def test_exp_is_required() -> None:
    token = jwt.encode({"sub": "a"}, "unit-test-secret-of-at-least-32-bytes", algorithm="HS256")
    await rejected(Authenticator(SETTINGS), token)


@pytest.mark.parametrize("sub", ["", "a b", "x" * 65, "../etc"])
async def test_a_subject_that_is_not_an_account_id_is_rejected(sub: str) -> None:
    token = jwt.encode(
        {"sub": sub, "exp": int(time.time()) + 60},
        "unit-test-secret-of-at-least-32-bytes",
        algorithm="HS256",
    )
    await rejected(Authenticator(SETTINGS), token)


@pytest.mark.parametrize("roles", [1, [1, "admin"], {"admin": "yes"}, [["admin"]]])
async def test_roles_must_be_names(roles: object) -> None:
    token = jwt.encode(
        {"sub": "a", "roles": roles, "exp": int(time.time()) + 60},
        "unit-test-secret-of-at-least-32-bytes",
        algorithm="HS256",
    )
    await rejected(Authenticator(SETTINGS), token)


async def test_issuer_and_audience_are_checked_when_configured() -> None:
    strict = Settings(
        jwt_secret="unit-test-secret-of-at-least-32-bytes", jwt_issuer="idp", jwt_audience="maas"
    )
    good = issue_dev_token(strict, "alice", [], 60)
    assert (await Authenticator(strict).authenticate(f"Bearer {good}")).account == "alice"
    await rejected(Authenticator(strict), issue_dev_token(SETTINGS, "alice", [], 60))


async def test_a_provider_token_for_another_application_or_tenant_is_401(
    idp: IdentityProvider,
) -> None:
    """One key set signs every tenant: only MaaS's issuer and audience may pass."""
    settings = jwks_settings(
        idp, jwt_issuer="https://idp.example/maas-tenant", jwt_audience="maas-api"
    )
    auth = Authenticator(settings)
    assert auth.keys is not None
    await auth.keys.start()
    try:
        ours: dict[str, Any] = {"iss": "https://idp.example/maas-tenant", "aud": "maas-api"}
        token = idp.token("rsa-1", "alice", ["admin"], **ours)
        assert (await auth.authenticate(f"Bearer {token}")).roles == {"admin"}
        foreigns: list[dict[str, Any]] = [
            {**ours, "aud": "some-other-app"},
            {**ours, "iss": "https://idp.example/attacker-tenant"},
            {"iss": ours["iss"]},
            {"aud": ours["aud"]},
        ]
        for foreign in foreigns:
            await rejected(auth, idp.token("rsa-1", "mallory", ["admin"], **foreign))
    finally:
        await auth.keys.close()


async def test_verified_tokens_are_cached_until_they_expire() -> None:
    auth = Authenticator(SETTINGS)
    token = issue_dev_token(SETTINGS, "alice", [], 60)
    first = await auth.authenticate(f"Bearer {token}")
    assert await auth.authenticate(f"Bearer {token}") is first


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.add_key("rsa-1", "RS256")
    provider.add_key("ec-1", "ES256")
    async with provider:
        yield provider


def jwks_settings(idp: IdentityProvider, **overrides: Any) -> Settings:
    return Settings(jwt_jwks_url=idp.jwks_url, jwt_algorithms=["RS256", "ES256"], **overrides)


@pytest.fixture
async def jwks_auth(idp: IdentityProvider) -> AsyncIterator[Authenticator]:
    auth = Authenticator(jwks_settings(idp, jwt_jwks_ttl_s=1, jwt_jwks_cooldown_s=0.2))
    stop = asyncio.Event()
    flags = await auth.start(stop)
    yield auth
    assert flags["jwks"](), "the refresher ran all along"
    stop.set()
    await auth.close()


async def test_jwks_tokens_in_rs256_and_es256_are_accepted(
    idp: IdentityProvider, jwks_auth: Authenticator
) -> None:
    for kid in ("rsa-1", "ec-1"):
        token = idp.token(kid, "bob", ["ai"])
        assert (await jwks_auth.authenticate(f"Bearer {token}")).account == "bob"


async def test_hmac_signed_with_the_public_key_is_rejected(
    idp: IdentityProvider, jwks_auth: Authenticator
) -> None:
    rsa_key, _ = idp.keys["rsa-1"]
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    payload = b64({"sub": "mallory", "roles": ["admin"], "exp": int(time.time()) + 60})
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    await rejected(jwks_auth, token)


async def test_a_rotated_key_verifies_and_a_removed_one_stops_within_the_ttl(
    idp: IdentityProvider, jwks_auth: Authenticator
) -> None:
    old = idp.token("rsa-1", "carol", [])
    assert (await jwks_auth.authenticate(f"Bearer {old}")).account == "carol"  # now cached
    idp.add_key("rsa-2")
    new = idp.token("rsa-2", "carol", [])
    await asyncio.sleep(0.25)  # past the cooldown of the start-up fetch
    assert (await jwks_auth.authenticate(f"Bearer {new}")).account == "carol"  # unknown kid
    idp.remove_key("rsa-1")
    removed_at = time.monotonic()
    while await verifies(jwks_auth, old):
        assert time.monotonic() - removed_at < 3, "a removed key still verifies (TTL 1 s)"
        await asyncio.sleep(0.05)
    assert time.monotonic() - removed_at <= 1 + 0.5  # the TTL, plus the fetch on loopback
    assert (await jwks_auth.authenticate(f"Bearer {new}")).account == "carol"


async def test_a_provider_withdrawing_every_key_stops_every_token(
    idp: IdentityProvider, jwks_auth: Authenticator
) -> None:
    token = idp.token("rsa-1", "carol", [])
    assert (await jwks_auth.authenticate(f"Bearer {token}")).account == "carol"  # cached
    idp.remove_key("rsa-1")
    idp.remove_key("ec-1")
    assert jwks_auth.keys is not None
    await jwks_auth.keys.refresh()

    with pytest.raises(ApiError) as refused:
        await jwks_auth.authenticate(f"Bearer {token}")
    assert refused.value.status == 401


async def test_unknown_key_ids_fetch_once_per_cooldown_without_blocking(
    idp: IdentityProvider,
) -> None:
    auth = Authenticator(jwks_settings(idp, jwt_jwks_cooldown_s=0.5, jwt_jwks_timeout_s=2))
    assert auth.keys is not None
    await auth.keys.start()
    try:
        await asyncio.sleep(0.6)  # past the cooldown of the start-up fetch
        idp.delay_s = 0.5
        fetches = idp.fetches
        storm = [idp.foreign_token(f"unknown-{i}", "mallory") for i in range(100)]
        started = time.monotonic()
        results = await asyncio.gather(
            *(auth.authenticate(f"Bearer {t}") for t in storm), return_exceptions=True
        )
        assert all(isinstance(r, ApiError) and r.status == 401 for r in results)
        assert idp.fetches - fetches == 1
        assert time.monotonic() - started < 2  # they shared one slow fetch
        await rejected(auth, idp.foreign_token("unknown-again", "mallory"))
        assert idp.fetches - fetches == 1  # within the cooldown: no fetch at all
    finally:
        await auth.keys.close()


async def test_an_unreachable_provider_keeps_the_last_keys(idp: IdentityProvider) -> None:
    auth = Authenticator(jwks_settings(idp, jwt_jwks_timeout_s=0.2))
    assert auth.keys is not None
    await auth.keys.start()
    try:
        token = idp.token("rsa-1", "dave", [])
        idp.delay_s = 1.0  # every fetch now times out
        await auth.keys.refresh()
        assert (await auth.authenticate(f"Bearer {token}")).account == "dave"
    finally:
        await auth.keys.close()


async def test_a_non_string_key_id_is_rejected(idp: IdentityProvider) -> None:
    auth = Authenticator(jwks_settings(idp))
    assert auth.keys is not None
    await auth.keys.start()
    try:
        header = b64({"alg": "RS256", "typ": "JWT", "kid": ["rsa-1"]})
        payload = b64({"sub": "eve", "exp": int(time.time()) + 60})
        await rejected(auth, f"{header}.{payload}.c2lnbmF0dXJl")
    finally:
        await auth.keys.close()


async def verifies(auth: Authenticator, token: str) -> bool:
    try:
        await auth.authenticate(f"Bearer {token}")
    except ApiError as error:
        if error.status == 401:
            return False
        raise
    return True


def fetch_errors() -> float:
    return JWKS_FETCHES.labels("error")._value.get()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "answer",
    [b"[]", b"null", b'"x"', b"{}", b'{"keys": "x"}', b'{"keys": [{"kty": "nope"}]}', b"<html>"],
)
async def test_any_malformed_answer_is_a_counted_failure_that_keeps_the_keys(
    idp: IdentityProvider, jwks_auth: Authenticator, answer: bytes
) -> None:
    token = idp.token("rsa-1", "carol", [])
    assert await verifies(jwks_auth, token)
    errors = fetch_errors()
    idp.malformed = answer
    assert jwks_auth.keys is not None
    await jwks_auth.keys.refresh()
    assert fetch_errors() == errors + 1, "every failed fetch is counted"
    assert await verifies(jwks_auth, token), "the last keys stay in use"


async def test_after_a_malformed_answer_the_refresher_still_withdraws_keys_within_the_ttl(
    idp: IdentityProvider, jwks_auth: Authenticator
) -> None:
    """One such answer used to end the refresher for good: withdrawn keys kept working."""
    token = idp.token("rsa-1", "carol", [])
    assert await verifies(jwks_auth, token)
    errors = fetch_errors()
    idp.malformed = b"[]"
    await asyncio.sleep(1.2)  # two refreshes (TTL 1 s) meet the bad answer
    assert fetch_errors() >= errors + 2
    idp.malformed = None
    idp.remove_key("rsa-1")
    removed_at = time.monotonic()
    while await verifies(jwks_auth, token):
        assert time.monotonic() - removed_at < 1.5, "a withdrawn key outlived the TTL"
        await asyncio.sleep(0.05)


async def test_a_redirect_is_refused_and_the_keys_are_kept(
    idp: IdentityProvider, jwks_auth: Authenticator
) -> None:
    token = idp.token("rsa-1", "carol", [])
    assert await verifies(jwks_auth, token)
    errors = fetch_errors()
    idp.redirect_to = f"{idp.base_url}/no-keys.json"  # followed, it would withdraw every key
    assert jwks_auth.keys is not None
    await jwks_auth.keys.refresh()
    assert fetch_errors() == errors + 1
    assert await verifies(jwks_auth, token)
