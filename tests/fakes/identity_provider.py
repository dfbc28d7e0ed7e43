"""A fake identity provider: a JWKS endpoint whose keys a test rotates, removes or slows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.fakes.server import LoopbackServer

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class IdentityProvider(LoopbackServer):
    """Publishes the public halves of its keys at /jwks.json and signs tokens with them."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, tuple[SigningKey, str]] = {}
        self.delay_s = 0.0
        self.fetches = 0
        # A broken or hostile provider: this body instead of the keys, or a redirect.
        self.malformed: bytes | None = None
        self.redirect_to: str | None = None
        self._foreign = ec.generate_private_key(ec.SECP256R1())

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/jwks.json"

    def add_key(self, kid: str, alg: str = "RS256") -> None:
        key: SigningKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg.startswith("RS")
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = (key, alg)

    def remove_key(self, kid: str) -> None:
        del self.keys[kid]

    def token(
        self, kid: str, sub: str, roles: list[str], *, ttl_s: int = 600, **claims: Any
    ) -> str:
        key, alg = self.keys[kid]
        payload = {"sub": sub, "roles": roles, "exp": int(time.time()) + ttl_s, **claims}
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})

    def foreign_token(self, kid: str, sub: str) -> str:
        """Signed by a key this provider never published."""
        payload = {"sub": sub, "exp": int(time.time()) + 600}
        return jwt.encode(payload, self._foreign, algorithm="ES256", headers={"kid": kid})

    def build(self) -> web.Application:
        async def jwks(_: web.Request) -> web.Response:
            self.fetches += 1
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.redirect_to is not None:
                raise web.HTTPFound(self.redirect_to)
            if self.malformed is not None:
                return web.Response(body=self.malformed, content_type="application/json")
            published = []
            for kid, (key, alg) in self.keys.items():
                public = jwt.algorithms.get_default_algorithms()[alg].to_jwk(
                    key.public_key(), as_dict=True
                )
                published.append({**public, "kid": kid, "alg": alg, "use": "sig"})
            return web.json_response({"keys": published})

        async def no_keys(_: web.Request) -> web.Response:
            return web.json_response({"keys": []})

        app = web.Application()
        app.router.add_get("/jwks.json", jwks)
        app.router.add_get("/no-keys.json", no_keys)
        return app
