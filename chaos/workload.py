"""The clients: accounts opened through the admin API, memes at a fixed rate over both
gateways, and billing's credits with `Idempotency-Key`s retried as billing retries them.

Every request and its answer goes into the history. Choices (account, kind, gateway,
which credits are retried) come from the seed; when each answer arrives does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from chaos.history import History
from shared.auth import issue_dev_token
from shared.settings import Settings

ACCOUNTS = 200
DRAINED = 5  # accounts that start small, get no credit and run dry
AI_EVERY = 4  # every fourth account has the `ai` role
OPENING_TOKENS = 100_000
DRAINED_TOKENS = 40
AI_SHARE = 0.2  # of the memes an `ai` account asks for
CREDIT_SHARE = 0.01  # of all requests
RETRIED_SHARE = 0.3  # credits sent again after their 202, on purpose
TIMED_OUT_SHARE = 0.2  # credits whose first attempt gives up after a few milliseconds
MEME_TIMEOUT_S = 60  # longer than any fault: an answer is what the gateway decided
CREDIT_RETRY_S = 0.5
MAX_IN_FLIGHT = 1_000
PLACES = ((40.730610, -73.935242), (48.8566, 2.3522), (35.6762, 139.6503), (-33.8688, 151.2093))
QUERIES = ("food", "cats", "rain", "deadlines", "coffee", "trains")
TOKEN_TTL_S = 6 * 3600


@dataclass(frozen=True)
class Account:
    id: str
    tokens: int
    ai: bool

    @property
    def drained(self) -> bool:
        return self.tokens == DRAINED_TOKENS


def accounts() -> list[Account]:
    return [
        Account(
            f"chaos-{i:03d}",
            DRAINED_TOKENS if i < DRAINED else OPENING_TOKENS,
            i % AI_EVERY == 1,
        )
        for i in range(ACCOUNTS)
    ]


@dataclass
class Workload:
    settings: Settings
    gateways: list[str]  # base URLs
    history: History
    seed: int
    http: aiohttp.ClientSession
    accounts: list[Account] = field(default_factory=accounts)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    credits_open: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.room = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.funded = [a.id for a in self.accounts if not a.drained]  # credits go here
        self.ids = itertools.count(1)
        self.tokens = {
            a.id: issue_dev_token(self.settings, a.id, ["ai"] if a.ai else [], TOKEN_TTL_S)
            for a in self.accounts
        }
        admin = issue_dev_token(self.settings, "chaos-billing", ["admin"], TOKEN_TTL_S)
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.credit_deadline = float("inf")

    async def open_accounts(self) -> None:
        """Each account through the admin API, retried until it exists (201, or 409 after
        an attempt whose answer was lost)."""
        for account in self.accounts:
            while True:
                status = await self._post_account(account)
                if status in (201, 409):
                    break
                await asyncio.sleep(0.2)
            self.history.write(
                "account", account=account.id, tokens=account.tokens, ai=account.ai, status=status
            )

    async def _post_account(self, account: Account) -> int | None:
        try:
            async with self.http.post(
                f"{self.gateways[0]}/v1/accounts",
                json={"id": account.id, "tokens": account.tokens},
                headers=self.admin,
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    # -- memes --------------------------------------------------------------------------

    async def saturate(self, seconds: float, connections: int = 64) -> float:
        """Text memes from `connections` clients, each sending as soon as answered: the rate."""
        deadline = time.monotonic() + seconds
        answered = 0

        async def client() -> None:
            nonlocal answered
            while time.monotonic() < deadline:
                await self.meme(self.rng.choice(self.funded), "text", phase="probe")
                answered += 1

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(connections)))
        return answered / (time.monotonic() - started)

    async def run(self, rate: float, seconds: float) -> None:
        """Requests at `rate` per second for `seconds`, whatever the answers take."""
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                await self.room.acquire()
                self._launch(self._next_request())
            sent += due
            await asyncio.sleep(0.005)

    async def settle(self, credit_deadline_s: float) -> None:
        """Wait for every meme's answer, and every credit's final 202 (or the deadline)."""
        self.credit_deadline = time.monotonic() + credit_deadline_s
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def _launch(self, request: Any) -> None:
        task = asyncio.create_task(request)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.room.release()

    def _next_request(self) -> Any:
        if self.rng.random() < CREDIT_SHARE:
            return self.credit(self.rng.choice(self.funded), self.rng.randint(1, 50))
        account = self.rng.choice(self.accounts)
        kind = "ai" if account.ai and self.rng.random() < AI_SHARE else "text"
        return self.meme(account.id, kind)

    async def meme(self, account: str, kind: str, phase: str = "load") -> None:
        request_id = f"chaos-m-{next(self.ids):07d}"
        gateway = self.rng.randrange(len(self.gateways))
        place = self.rng.choice(PLACES)
        query = self.rng.choice(QUERIES)
        sent = self.history.now()
        fields: dict[str, Any] = {"status": None}
        try:
            async with self.http.get(
                f"{self.gateways[gateway]}/v1/memes",
                params={"lat": place[0], "lon": place[1], "query": query, "kind": kind},
                headers={
                    "Authorization": f"Bearer {self.tokens[account]}",
                    "X-Request-ID": request_id,
                },
                timeout=aiohttp.ClientTimeout(total=MEME_TIMEOUT_S),
            ) as response:
                body = await response.read()
                fields["status"] = response.status
                fields.update(_answer(body))
        except (aiohttp.ClientError, TimeoutError) as error:
            fields["error"] = type(error).__name__
        self.history.write(
            "meme",
            id=request_id,
            account=account,
            asked=kind,
            gateway=gateway + 1,
            phase=phase,
            sent=sent,
            **fields,
        )

    # -- credits ------------------------------------------------------------------------

    async def credit(self, account: str, amount: int) -> None:
        """Billing's credit: sent until answered 202; then, sometimes, sent once more."""
        key = f"chaos-c-{next(self.ids):07d}"
        first_timeout = 0.005 if self.rng.random() < TIMED_OUT_SHARE else MEME_TIMEOUT_S
        repeat = self.rng.random() < RETRIED_SHARE
        attempt = 1
        while await self._credit_once(account, amount, key, attempt, first_timeout) != 202:
            if time.monotonic() > self.credit_deadline:
                return
            attempt += 1
            first_timeout = MEME_TIMEOUT_S
            await asyncio.sleep(CREDIT_RETRY_S)
        if repeat:
            await self._credit_once(account, amount, key, attempt + 1, MEME_TIMEOUT_S)

    async def _credit_once(
        self, account: str, amount: int, key: str, attempt: int, timeout_s: float
    ) -> int | None:
        sent = self.history.now()
        fields: dict[str, Any] = {"status": None}
        gateway = self.gateways[self.rng.randrange(len(self.gateways))]
        try:
            async with self.http.post(
                f"{gateway}/v1/accounts/{account}/credits",
                json={"amount": amount},
                headers={**self.admin, "Idempotency-Key": key},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                body = await response.read()
                fields["status"] = response.status
                with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                    fields["event"] = orjson.loads(body).get("event_id")
        except (aiohttp.ClientError, TimeoutError) as error:
            fields["error"] = type(error).__name__
        self.history.write(
            "credit", key=key, account=account, amount=amount, attempt=attempt, sent=sent, **fields
        )
        status: int | None = fields["status"]
        return status


def _answer(body: bytes) -> dict[str, Any]:
    """What a meme answer says it charged, or the error code it gave."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"body": body[:80].decode(errors="replace")}
    if not isinstance(parsed, dict):
        return {}
    if "tokens_charged" in parsed:
        return {"charged": parsed["tokens_charged"], "kind": parsed.get("kind")}
    error = parsed.get("error")
    return {"code": error.get("code") if isinstance(error, dict) else error}
