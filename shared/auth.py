"""JWT verification with a cache of verified tokens.

Dev: HS256 with a shared secret. Production: RS256/ES256 keys from the identity
provider's JWKS URL. The two never mix, so an HMAC token signed with a public key
(algorithm confusion) is rejected, as is `alg: none`. A verified token is cached
until it expires, so the signature is checked once per token, not once per request;
a cached token signed by a key the provider has since removed stops verifying as
soon as the key set is fetched again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import jwt
import orjson
from prometheus_client import Counter

from shared.aio import Supervised
from shared.claims import ClaimsError, ClaimsMapping
from shared.errors import ApiError
from shared.settings import Settings
from shared.validation import ACCOUNT_ID
from shared.web import read_bounded

ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
CACHE_LIMIT = 100_000
MAX_JWKS_BYTES = 1 << 20

JWKS_FETCHES = Counter("maas_jwks_fetches_total", "JWKS fetches, by result", ["result"])

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Principal:
    account: str
    roles: frozenset[str]
    expires_at: float
    key_id: str | None = None


def unauthorized(message: str) -> ApiError:
    return ApiError("unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="maas"'})


class KeySet:
    """The identity provider's signing keys, fetched on the event loop, never blocking it.

    PyJWKClient fetches with blocking urllib and keeps keys until restart; this keeps
    PyJWT's key parsing and adds what a gateway needs: one fetch at a time however many
    requests ask, a refresh every `ttl_s / 2` (so a removed key is gone within `ttl_s`),
    and at most one extra fetch per `cooldown_s` for tokens with an unknown key id.
    While the provider is unreachable the last keys stay in use (and the failure is
    counted), so an outage of the provider is not an outage of the API.
    """

    def __init__(self, url: str, *, ttl_s: float, cooldown_s: float, timeout_s: float) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.cooldown_s = cooldown_s
        self.timeout_s = timeout_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_attempt = -float("inf")
        self._fetching: asyncio.Future[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def __contains__(self, key_id: str | None) -> bool:
        return key_id is not None and key_id in self._keys

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        await self.refresh()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh twice per TTL until `stop` is set (run it under `Supervised`)."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.ttl_s / 2)
                return
            except TimeoutError:
                await self.refresh()

    async def key(self, key_id: str | None) -> jwt.PyJWK:
        if key_id not in self._keys:
            if self._fetching is not None and not self._fetching.done():
                await asyncio.shield(self._fetching)
            elif time.monotonic() - self._last_attempt >= self.cooldown_s:
                await self.refresh()
        if key_id is None or key_id not in self._keys:
            raise unauthorized("token signed by an unknown key")
        return self._keys[key_id]

    async def refresh(self) -> None:
        """Fetch the keys; callers arriving during a fetch wait for that same fetch."""
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.ensure_future(self._fetch())
        await asyncio.shield(self._fetching)

    async def _fetch(self) -> None:
        if self._session is None:
            raise RuntimeError("KeySet.start() was not called")
        try:
            # A redirect is refused: it could lead anywhere, plain http included.
            async with self._session.get(self.url, allow_redirects=False) as response:
                if response.status != 200:
                    raise ValueError(f"the JWKS endpoint answered {response.status}")
                body = await read_bounded(response, MAX_JWKS_BYTES)
            keys = parse_key_set(body)
        except Exception as exc:  # whatever the provider answers, the last keys stay
            JWKS_FETCHES.labels("error").inc()
            log.warning("JWKS fetch failed; keeping the last keys", extra={"error": repr(exc)})
            return
        finally:
            self._last_attempt = time.monotonic()
        JWKS_FETCHES.labels("ok").inc()
        self._keys = keys


def parse_key_set(body: bytes) -> dict[str, jwt.PyJWK]:
    """The published keys by id. An empty set is the provider withdrawing every key:
    PyJWKSet refuses it as an error, which would keep the old keys; we honour it."""
    raw = orjson.loads(body)
    if not isinstance(raw, dict) or not isinstance(raw.get("keys"), list):
        raise ValueError("the JWKS answer is not an object with a list of keys")
    if raw["keys"] == []:
        return {}
    return {k.key_id: k for k in jwt.PyJWKSet.from_dict(raw).keys if k.key_id}


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.leeway = settings.jwt_leeway_s
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.claims = claims_mapping(settings)
        self._cache: dict[str, Principal] = {}
        self.keys: KeySet | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._secret = ""
        if settings.jwt_jwks_url:
            self.algorithms = [a for a in settings.jwt_algorithms if a in ASYMMETRIC] or ["RS256"]
            self.keys = KeySet(
                settings.jwt_jwks_url,
                ttl_s=settings.jwt_jwks_ttl_s,
                cooldown_s=settings.jwt_jwks_cooldown_s,
                timeout_s=settings.jwt_jwks_timeout_s,
            )
        else:
            self.algorithms = ["HS256"]
            self._secret = settings.jwt_secret

    async def start(self, stop: asyncio.Event) -> dict[str, Callable[[], bool]]:
        """Fetch the provider's keys, then refresh them under supervision until `stop`.

        Returns the readiness flags to report: none for a shared secret.
        """
        if self.keys is None:
            return {}
        await self.keys.start()
        refresher = Supervised("jwks", self.keys.run)
        self._refreshing = asyncio.create_task(refresher.run(stop))
        return {"jwks": lambda: refresher.alive}

    async def close(self) -> None:
        """After `stop` is set: let the refresher end, then close its session."""
        if self._refreshing is not None:
            await self._refreshing
        if self.keys is not None:
            await self.keys.close()

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise unauthorized("missing bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("use 'Authorization: Bearer <token>'")
        token = token.strip()
        cached = self._cache.get(token)
        if cached is not None and self.still_valid(cached):
            return cached
        principal = await self._verify(token)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = principal
        return principal

    def still_valid(self, principal: Principal) -> bool:
        """Not expired, and signed by a key the provider still publishes."""
        if principal.expires_at + self.leeway <= time.time():
            return False
        return self.keys is None or principal.key_id in self.keys

    async def _verify(self, token: str) -> Principal:
        try:
            key_id: str | None = None
            key: object = self._secret
            if self.keys is not None:
                kid = jwt.get_unverified_header(token).get("kid")
                key_id = kid if isinstance(kid, str) else None
                key = (await self.keys.key(key_id)).key
            claims = jwt.decode(
                token,
                key=key,  # type: ignore[arg-type]
                algorithms=self.algorithms,
                leeway=self.leeway,
                issuer=self.issuer,
                audience=self.audience,
                options={
                    "require": ["exp"],
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired") from None
        except (jwt.PyJWTError, ValueError):
            raise unauthorized("invalid token") from None
        try:
            account, roles = self.claims.account(claims), self.claims.roles(claims)
        except ClaimsError as exc:
            raise unauthorized(str(exc)) from None
        if not ACCOUNT_ID.fullmatch(account):
            raise unauthorized(f"token claim {self.claims.account_claim!r} is not an account id")
        return Principal(account, roles, float(claims["exp"]), key_id)


def claims_mapping(settings: Settings) -> ClaimsMapping:
    return ClaimsMapping(
        settings.jwt_account_claim, settings.jwt_roles_claim, dict(settings.jwt_role_map)
    )


def issue_dev_token(settings: Settings, account: str, roles: list[str], ttl_s: int) -> str:
    """Sign a token with the local secret, for `maas token`, demos and tests."""
    now = int(time.time())
    claims = claims_mapping(settings).claims_for(account, roles)
    claims.update(iat=now, exp=now + ttl_s)
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
