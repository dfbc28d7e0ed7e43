"""Who may use the console: an admin JWT in a cookie, and a CSRF token per session.

The cookie holds the token pasted at sign-in (HttpOnly, SameSite=Strict), verified on
every request by the same `Authenticator` as the gateway's, so an expired or revoked
token signs the operator out. A form's CSRF token is an HMAC of the session's token
under a key kept in Redis, so every replica issues and accepts the same one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from aiohttp import web

from services.gateway.domain.pricing import ADMIN_ROLE
from shared.auth import Authenticator, Principal
from shared.errors import ApiError
from shared.keys import Keys
from shared.stores import Redis

COOKIE = "maas_console"
CSRF_FIELD = "csrf"


async def shared_csrf_key(redis: Redis) -> bytes:
    """The first replica to start picks the key; the others read it."""
    await redis.set(Keys.console_csrf_key(), secrets.token_hex(32), nx=True)
    key = await redis.get(Keys.console_csrf_key())
    if not key:
        raise RuntimeError("the console's CSRF key vanished from Redis")
    return str(key).encode()


class Gate:
    def __init__(self, auth: Authenticator, redis: Redis, secure_cookie: bool) -> None:
        self.auth = auth
        self.redis = redis
        self.secure_cookie = secure_cookie
        self._csrf_key: bytes | None = None

    async def admin(self, token: str) -> Principal:
        """The principal of an admin token; ApiError (401, 403) otherwise."""
        principal = await self.auth.authenticate(f"Bearer {token}")
        if ADMIN_ROLE not in principal.roles:
            raise ApiError("forbidden", "the console needs a token with the 'admin' role")
        return principal

    async def signed_in(self, request: web.Request) -> Principal | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        try:
            return await self.admin(token)
        except ApiError:
            return None

    async def csrf_token(self, request: web.Request) -> str:
        """Read from Redis on first use, so a ledger starts (and applies) without Redis."""
        if self._csrf_key is None:
            self._csrf_key = await shared_csrf_key(self.redis)
        session = request.cookies.get(COOKIE, "")
        return hmac.new(self._csrf_key, session.encode(), hashlib.sha256).hexdigest()

    async def check_csrf(self, request: web.Request) -> None:
        sent = (await request.post()).get(CSRF_FIELD)
        expected = await self.csrf_token(request)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
            raise ApiError("forbidden", "missing or wrong CSRF token; reload the page")

    def keep(self, response: web.StreamResponse, token: str, principal: Principal) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=max(0, int(principal.expires_at - time.time())),
            path="/console/",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookie,
        )

    @staticmethod
    def forget(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/console/")
