"""Who may use the console: a server-side session opened with an admin JWT.

Sign-in verifies the pasted token with the same `Authenticator` as the gateway's and
opens a session in Redis (every replica sees it): the token's account, roles, expiry
and signing key, and a random CSRF token. The cookie carries only the session's random
id (HttpOnly, SameSite=Strict), never the JWT, so a stolen cookie is no API
credential; Redis keeps only a hash of the id. A session ends at sign-out (deleted),
when its token would expire, after MAX_SESSION_S, or as soon as the key that signed
its token is withdrawn from the JWKS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from aiohttp import web

from shared.auth import Authenticator, Principal
from shared.claims import ADMIN_ROLE
from shared.errors import ApiError
from shared.keys import Keys
from shared.stores import Redis

COOKIE = "maas_console"
CSRF_FIELD = "csrf"
MAX_SESSION_S = 12 * 3600
SESSION_KEY = "console_session"


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str


def _record_key(session_id: str) -> str:
    return Keys.console_session(hashlib.sha256(session_id.encode()).hexdigest())


class Gate:
    def __init__(self, auth: Authenticator, redis: Redis, secure_cookie: bool) -> None:
        self.auth = auth
        self.redis = redis
        self.secure_cookie = secure_cookie

    async def admin(self, token: str) -> Principal:
        """The principal of an admin token; ApiError (401, 403) otherwise."""
        principal = await self.auth.authenticate(f"Bearer {token}")
        if ADMIN_ROLE not in principal.roles:
            raise ApiError("forbidden", "the console needs a token with the 'admin' role")
        return principal

    async def open(self, response: web.StreamResponse, principal: Principal) -> None:
        """Start a session for a verified admin and hand the browser its id."""
        session_id = secrets.token_urlsafe(32)
        lifetime = int(min(principal.expires_at - time.time(), MAX_SESSION_S))
        if lifetime <= 0:
            raise ApiError("unauthorized", "token expired")
        record = {
            "account": principal.account,
            "roles": sorted(principal.roles),
            "expires_at": time.time() + lifetime,
            "key_id": principal.key_id,
            "csrf": secrets.token_hex(32),
        }
        await self.redis.set(_record_key(session_id), orjson.dumps(record), ex=lifetime)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=lifetime,
            path="/console/",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookie,
        )

    async def session(self, request: web.Request) -> Session | None:
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            return None
        raw = await self.redis.get(_record_key(session_id))
        if not raw:
            return None
        record = orjson.loads(raw)
        principal = Principal(
            record["account"], frozenset(record["roles"]), record["expires_at"], record["key_id"]
        )
        if not self.auth.still_valid(principal):
            await self.redis.delete(_record_key(session_id))
            return None
        return Session(principal, record["csrf"])

    async def close(self, request: web.Request, response: web.StreamResponse) -> None:
        """Sign out: the session is deleted, so its cookie opens nothing, here or elsewhere."""
        session_id = request.cookies.get(COOKIE)
        if session_id:
            await self.redis.delete(_record_key(session_id))
        response.del_cookie(COOKIE, path="/console/")

    @staticmethod
    async def check_csrf(request: web.Request, session: Session) -> None:
        sent = (await request.post()).get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            raise ApiError("forbidden", "missing or wrong CSRF token; reload the page")
