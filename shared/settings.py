"""Every setting of every MaaS service, read from the environment.

One place per fact: ports, queue names, prices, limits and timeouts live here and
nowhere else; infra/ and docker-compose.yml are checked against this module by tests.
Each field is read from ``MAAS_<FIELD>`` unless it names another variable
(``OPENAI_*``, ``AWS_*``). Defaults suit a local run on loopback; the ones marked
DEV-ONLY must be replaced in any shared environment.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import AliasChoices, BaseModel, Field, PositiveInt, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "maas-dev-only-secret-do-not-deploy"  # noqa: S105 - DEV-ONLY, by design


DEV_ROLE_MAP = {"ai": "ai", "admin": "admin"}  # DEV-ONLY: tokens name MaaS roles directly


class RateLimit(BaseModel):
    """A token bucket: `rate` requests per second on average, bursts up to `burst`."""

    rate: float = Field(gt=0)
    burst: PositiveInt


DEFAULT_RATE_LIMITS = {
    "default": RateLimit(rate=250, burst=500),
    "ai": RateLimit(rate=300, burst=600),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MAAS_", frozen=True, extra="ignore", populate_by_name=True
    )

    env: Literal["dev", "test", "prod"] = "dev"
    log_level: str = "INFO"

    # Backends.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    redis_max_connections: PositiveInt = 64
    # Caches (remote geocoder answers) live in their own Redis instance, with its own
    # maxmemory and LRU eviction: a full cache never refuses a charge. Unset: no cache.
    cache_redis_url: str | None = "redis://127.0.0.1:6380/0"
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "maas"
    sqs_endpoint_url: str | None = "http://127.0.0.1:4566"
    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("MAAS_AWS_REGION", "AWS_DEFAULT_REGION", "AWS_REGION"),
    )
    aws_access_key_id: str | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: str | None = Field(
        default=None, validation_alias="AWS_SECRET_ACCESS_KEY"
    )

    # Queue topology; infra/terraform and docker-compose must agree (tests check it).
    queue_name: str = "maas-token-events.fifo"
    dlq_name: str = "maas-token-events-dlq.fifo"
    max_receive_count: PositiveInt = 5
    # The share of requests written to the access log (JSON lines); 0 writes none.
    access_log_sample: float = Field(default=0.0, ge=0, le=1)
    # An event loop that does not turn for this long is logged with the code that held
    # it (shared/stalls.py); 0 turns the watch off.
    stall_report_s: float = Field(default=0.5, ge=0)
    # A ledger writes one summary line (applied, held, redelivered, lag) this often.
    ledger_summary_every_s: float = Field(default=60.0, gt=0)
    visibility_timeout_s: PositiveInt = 30
    message_retention_s: PositiveInt = 345_600
    dlq_retention_s: PositiveInt = 1_209_600

    # Accounting.
    shards: PositiveInt = 64
    # Set, the gateway charges each account's slice in this region, filled from the
    # account's pool in MongoDB (docs/multi-region.md); empty, one region holds it all.
    region: str = Field(default="", pattern=r"^([a-z0-9][a-z0-9-]{0,31})?$")
    # How long a charge that finds its region's slice empty waits for an urgent grant.
    slice_wait_s: float = Field(default=1.0, ge=0)
    # A slice unused this long goes back to the account's pool, but for its standby.
    slice_idle_return_s: float = Field(default=60.0, gt=0)
    price_text: PositiveInt = 1
    price_ai: PositiveInt = 2
    # Per account, by role (the most generous of the caller's roles applies; `default`
    # is everyone's). The defaults admit the reference load script, 200 clients on one
    # token at ~190/s starting at once, with room to spare; see docs/security.md.
    rate_limits: dict[str, RateLimit] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    idempotency_ttl_s: PositiveInt = 7 * 24 * 3600

    # Gateway.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_workers: PositiveInt = 1
    meme_url: str = "http://127.0.0.1:8081"
    meme_timeout_s: float = 2.0
    meme_ai_timeout_s: float = 25.0
    # On SIGTERM, memes in flight may finish for this long; then they are refunded (503).
    gateway_drain_s: float = Field(default=25.0, ge=0)
    # A charge still pending this long after its meme's timeout is refunded by the sweeper.
    charge_settle_margin_s: float = Field(default=5.0, gt=0)
    # A refund is answered once SQS has it (a Redis restarted from an older snapshot would
    # lose it), waiting at most this long; see services/gateway/usecases/refunds.py.
    refund_durable_within_s: float = Field(default=5.0, ge=0)
    max_body_bytes: PositiveInt = 16_384
    # A client that sends its request body slower than this gets 408 (a slow sender holds
    # a handler; slow headers are the ingress's to cut, see docs/security.md).
    body_timeout_s: float = Field(default=5.0, gt=0)
    jwt_secret: str = DEV_JWT_SECRET
    jwt_jwks_url: str | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_s: int = 10
    # Claims from any identity provider: the one naming the account, the one granting
    # roles (a dot-separated path: `realm_access.roles` for Keycloak, `permissions` for
    # Auth0, `cognito:groups`, `groups` for Okta, `scope`), and a table from the
    # provider's names to MaaS roles ({"GenerateLlmMeme": "ai"}): only the names in it
    # grant roles. DEV-ONLY default: MaaS's own role names; production must set its own.
    # See docs/security.md.
    jwt_account_claim: str = Field(default="sub", min_length=1)
    jwt_roles_claim: str = Field(default="roles", min_length=1)
    jwt_role_map: dict[str, str] = Field(default_factory=lambda: dict(DEV_ROLE_MAP))
    # JWKS keys are fetched again at least this often, so a removed key stops verifying
    # (cached verified tokens included) within this time.
    jwt_jwks_ttl_s: PositiveInt = 300
    # A token with an unknown key id fetches the keys again at most this often.
    jwt_jwks_cooldown_s: float = Field(default=10.0, gt=0)
    jwt_jwks_timeout_s: float = Field(default=2.0, gt=0)
    relay_batch_size: PositiveInt = 100
    relay_lease_ttl_ms: PositiveInt = 5_000
    relay_idle_sleep_ms: PositiveInt = 50
    relay_linger_ms: int = Field(default=1000, ge=0)

    # Meme service.
    meme_host: str = "127.0.0.1"
    meme_port: int = 8081
    geocoder: Literal["offline", "nominatim", "google"] = "offline"
    geocoder_url: str | None = None
    google_api_key: str | None = Field(default=None, validation_alias="MAAS_GOOGLE_API_KEY")
    geocoder_timeout_s: float = 1.0
    geocoder_concurrency: PositiveInt = 8
    geocode_cache_ttl_s: PositiveInt = 30 * 24 * 3600
    geohash_precision: PositiveInt = 7
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    openai_api_key: str | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    ai_model: str = "gpt-4o-mini"
    ai_timeout_s: float = 20.0
    ai_max_retries: int = 2
    ai_concurrency: PositiveInt = 32
    image_width: PositiveInt = 800
    image_height: PositiveInt = 600

    # Ledger worker.
    ledger_host: str = "127.0.0.1"
    ledger_port: int = 8082
    ledger_receivers: PositiveInt = 4
    # A stopping ledger waits for its long polls to end (what they bring is given back at
    # once), so the wait bounds a stop; 4 receivers polling an idle queue every 5 s cost
    # under a request a second.
    ledger_wait_time_s: int = Field(default=5, ge=0, le=20)
    # A batch still being applied after this long means a store call hangs (a store that
    # answers nothing, a broken client): the ledger exits so a fresh process takes over,
    # instead of keeping the batch's groups invisible for good.
    ledger_stuck_after_s: float = Field(default=120.0, gt=0)
    reconcile_interval_s: int = Field(default=60, ge=0)
    reconcile_page_size: PositiveInt = 1_000
    # One replica at a time samples the pipeline (outbox, relay lag, queues) this often for
    # the console's charts; every replica adds its own apply counts. 0: no sampling.
    pipeline_sample_interval_s: int = Field(default=10, ge=0)

    @field_validator(
        "sqs_endpoint_url", "cache_redis_url", "jwt_jwks_url", "jwt_issuer", "jwt_audience",
        "geocoder_url", "openai_base_url", "openai_api_key", "google_api_key", "aws_access_key_id",
        "aws_secret_access_key", mode="before",
    )  # fmt: skip
    @classmethod
    def empty_is_unset(cls, value: object) -> object:
        """`VAR=` means "not set": a chart or compose file can blank out a default."""
        return None if value == "" else value

    @cached_property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    @cached_property
    def cache_redis_port(self) -> int:
        return urlsplit(self.cache_redis_url or "").port or 6380

    @cached_property
    def mongo_port(self) -> int:
        return urlsplit(self.mongo_url).port or 27017

    @cached_property
    def sqs_port(self) -> int:
        return urlsplit(self.sqs_endpoint_url or "").port or 4566

    def refundable_after_s(self, kind: str) -> float:
        """How long a charge of this kind may stay pending before the sweeper refunds it."""
        timeout = self.meme_ai_timeout_s if kind == "ai" else self.meme_timeout_s
        return timeout + self.charge_settle_margin_s

    @property
    def ai_configured(self) -> bool:
        return bool(self.openai_base_url)


def env_names() -> dict[str, str]:
    """Map each field to the environment variable it is read from (for infra checks)."""
    names: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names[name] = alias
        elif isinstance(alias, AliasChoices):
            names[name] = str(alias.choices[0])
        else:
            names[name] = f"MAAS_{name.upper()}"
    return names


def to_environment(values: dict[str, Any]) -> dict[str, str]:
    """Settings field values -> the environment variables that set them (None: unset).

    The inverse of reading Settings, for whatever starts the services as processes.
    """
    names = env_names()
    env: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            env[names[key]] = "true" if value else "false"
        elif isinstance(value, dict | list):
            env[names[key]] = orjson.dumps(value).decode()
        else:
            env[names[key]] = str(value)
    return env
