"""JWT verification: every known attack is a 401, good tokens are cached."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.gateway.adapters.auth import Authenticator, issue_dev_token
from shared.errors import ApiError
from shared.settings import Settings

SETTINGS = Settings(jwt_secret="unit-test-secret-of-at-least-32-bytes")


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def rejected(auth: Authenticator, token: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        auth.authenticate(f"Bearer {token}")
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    return caught.value


def test_a_good_token_gives_the_account_and_roles() -> None:
    principal = Authenticator(SETTINGS).authenticate(
        f"Bearer {issue_dev_token(SETTINGS, 'alice', ['ai'], 60)}"
    )
    assert (principal.account, principal.roles) == ("alice", frozenset({"ai"}))


def test_alg_none_is_rejected() -> None:
    now = int(time.time())
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': 'a', 'exp': now + 60})}."
    rejected(Authenticator(SETTINGS), token)


def test_a_tampered_payload_is_rejected() -> None:
    header, _, signature = issue_dev_token(SETTINGS, "alice", [], 60).split(".")
    forged = b64({"sub": "alice", "roles": ["admin"], "exp": int(time.time()) + 60})
    rejected(Authenticator(SETTINGS), f"{header}.{forged}.{signature}")


def test_another_secret_is_rejected() -> None:
    token = issue_dev_token(
        Settings(jwt_secret="someone-elses-secret-of-32-bytes-or-more"), "alice", [], 60
    )
    rejected(Authenticator(SETTINGS), token)


def test_expired_and_not_yet_valid_tokens_are_rejected() -> None:
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "a", "exp": now - 60}, "unit-test-secret-of-at-least-32-bytes", algorithm="HS256"
    )
    assert rejected(Authenticator(SETTINGS), expired).message == "token expired"
    early = jwt.encode(
        {"sub": "a", "exp": now + 600, "nbf": now + 300},
        "unit-test-secret-of-at-least-32-bytes",
        algorithm="HS256",
    )
    rejected(Authenticator(SETTINGS), early)


def test_exp_is_required() -> None:
    token = jwt.encode({"sub": "a"}, "unit-test-secret-of-at-least-32-bytes", algorithm="HS256")
    rejected(Authenticator(SETTINGS), token)


@pytest.mark.parametrize("sub", ["", "a b", "x" * 65, "../etc"])
def test_a_subject_that_is_not_an_account_id_is_rejected(sub: str) -> None:
    token = jwt.encode(
        {"sub": sub, "exp": int(time.time()) + 60},
        "unit-test-secret-of-at-least-32-bytes",
        algorithm="HS256",
    )
    rejected(Authenticator(SETTINGS), token)


def test_roles_must_be_a_list_of_strings() -> None:
    token = jwt.encode(
        {"sub": "a", "roles": "admin", "exp": int(time.time()) + 60},
        "unit-test-secret-of-at-least-32-bytes",
        algorithm="HS256",
    )
    rejected(Authenticator(SETTINGS), token)


def test_issuer_and_audience_are_checked_when_configured() -> None:
    strict = Settings(
        jwt_secret="unit-test-secret-of-at-least-32-bytes", jwt_issuer="idp", jwt_audience="maas"
    )
    good = issue_dev_token(strict, "alice", [], 60)
    assert Authenticator(strict).authenticate(f"Bearer {good}").account == "alice"
    rejected(Authenticator(strict), issue_dev_token(SETTINGS, "alice", [], 60))


def test_verified_tokens_are_cached_until_they_expire() -> None:
    auth = Authenticator(SETTINGS)
    token = issue_dev_token(SETTINGS, "alice", [], 60)
    first = auth.authenticate(f"Bearer {token}")
    assert auth.authenticate(f"Bearer {token}") is first


@pytest.fixture(scope="module")
def identity_provider() -> Iterator[tuple[str, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]]:
    """A loopback JWKS endpoint, as an identity provider publishes its keys."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, key, alg in (("rsa-1", rsa_key, "RS256"), ("ec-1", ec_key, "ES256")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    body = json.dumps({"keys": keys}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json", rsa_key, ec_key
    server.shutdown()


def test_jwks_tokens_in_rs256_and_es256_are_accepted(
    identity_provider: tuple[str, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey],
) -> None:
    url, rsa_key, ec_key = identity_provider
    auth = Authenticator(Settings(jwt_jwks_url=url, jwt_algorithms=["RS256", "ES256"]))
    claims = {"sub": "bob", "roles": ["ai"], "exp": int(time.time()) + 60}
    for kid, key, alg in (("rsa-1", rsa_key, "RS256"), ("ec-1", ec_key, "ES256")):
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
        assert auth.authenticate(f"Bearer {token}").account == "bob"


def test_hmac_signed_with_the_public_key_is_rejected(
    identity_provider: tuple[str, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey],
) -> None:
    url, rsa_key, _ = identity_provider
    auth = Authenticator(Settings(jwt_jwks_url=url, jwt_algorithms=["RS256"]))
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    payload = b64({"sub": "mallory", "roles": ["admin"], "exp": int(time.time()) + 60})
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    rejected(auth, token)
