"""JWT verification with a cache of verified tokens.

Dev: HS256 with a shared secret. Production: RS256/ES256 keys from the identity
provider's JWKS URL. The two never mix, so an HMAC token signed with a public key
(algorithm confusion) is rejected, as is `alg: none`. A verified token is cached
until it expires, so the signature is checked once per token, not once per request.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import jwt

from shared.errors import ApiError
from shared.settings import Settings

ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Principal:
    account: str
    roles: frozenset[str]
    expires_at: float


def unauthorized(message: str) -> ApiError:
    return ApiError("unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="maas"'})


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.leeway = settings.jwt_leeway_s
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self._cache: dict[str, Principal] = {}
        if settings.jwt_jwks_url:
            self.algorithms = [a for a in settings.jwt_algorithms if a in ASYMMETRIC] or ["RS256"]
            self._jwks: jwt.PyJWKClient | None = jwt.PyJWKClient(
                settings.jwt_jwks_url, cache_keys=True, lifespan=300
            )
            self._secret = ""
        else:
            self.algorithms = ["HS256"]
            self._jwks = None
            self._secret = settings.jwt_secret

    def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise unauthorized("missing bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("use 'Authorization: Bearer <token>'")
        token = token.strip()
        cached = self._cache.get(token)
        if cached is not None and cached.expires_at + self.leeway > time.time():
            return cached
        principal = self._verify(token)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = principal
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            key: object = self._secret
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key=key,  # type: ignore[arg-type]
                algorithms=self.algorithms,
                leeway=self.leeway,
                issuer=self.issuer,
                audience=self.audience,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired") from None
        except (jwt.PyJWTError, ValueError):
            raise unauthorized("invalid token") from None
        account, roles = claims.get("sub"), claims.get("roles", [])
        if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
            raise unauthorized("token subject is not a valid account id")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise unauthorized("token roles must be a list of strings")
        return Principal(account, frozenset(roles), float(claims["exp"]))


def issue_dev_token(settings: Settings, account: str, roles: list[str], ttl_s: int) -> str:
    """Sign a token with the local secret, for `maas token`, demos and tests."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": account, "roles": roles, "iat": now, "exp": now + ttl_s}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
