"""A production process on an unsafe setup exits within seconds and names the setting."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from infra.local.stack import ROOT, free_port
from shared.production import EXIT_UNSAFE
from shared.settings import env_names

SAFE = {
    "MAAS_ENV": "prod",
    "MAAS_JWT_SECRET": "a-production-secret-that-is-long-enough-0123",
    "MAAS_SQS_ENDPOINT_URL": "",
    "MAAS_JWT_ROLE_MAP": '{"maas-ai": "ai", "maas-admins": "admin"}',
}
IDP = {"MAAS_JWT_ISSUER": "https://idp.example/", "MAAS_JWT_AUDIENCE": "maas-api"}


@pytest.mark.parametrize(
    ("service", "unsafe", "named"),
    [
        ("gateway", {"MAAS_JWT_SECRET": None}, "MAAS_JWT_SECRET"),
        ("gateway", {"MAAS_JWT_SECRET": "short"}, "MAAS_JWT_SECRET"),
        ("ledger", {"MAAS_JWT_SECRET": None}, "MAAS_JWT_SECRET"),
        ("gateway", {"MAAS_JWT_JWKS_URL": "http://idp/jwks", **IDP}, "MAAS_JWT_JWKS_URL"),
        (
            "gateway",
            {"MAAS_JWT_JWKS_URL": "https://idp/jwks", "MAAS_JWT_ISSUER": "https://idp/"},
            "MAAS_JWT_AUDIENCE",
        ),
        ("ledger", {"MAAS_JWT_ROLE_MAP": None}, "MAAS_JWT_ROLE_MAP"),
        ("gateway", {"MAAS_JWT_ACCOUNT_CLAIM": "custom:email"}, "MAAS_JWT_ACCOUNT_CLAIM"),
        ("gateway", {"MAAS_JWT_ROLES_CLAIM": "custom:roles"}, "MAAS_JWT_ROLES_CLAIM"),
        ("gateway", {"MAAS_RATE_LIMITS": '{"ai": {"rate": 9, "burst": 9}}'}, "MAAS_RATE_LIMITS"),
        ("gateway", {"MAAS_SQS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "MAAS_SQS_ENDPOINT_URL"),
        (
            "ledger",
            {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
            "AWS_ACCESS_KEY_ID",
        ),
        ("meme", {"OPENAI_BASE_URL": "http://169.254.169.254/v1"}, "OPENAI_BASE_URL"),
    ],
)
async def test_an_unsafe_production_process_exits_naming_the_setting(
    service: str, unsafe: dict[str, str | None], named: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in env_names().values()}
    env.update(SAFE)
    for name, value in unsafe.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    port = free_port()
    env.update({f"MAAS_{service.upper()}_PORT": str(port)})
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"services.{service}",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == EXIT_UNSAFE
    assert time.monotonic() - started < 20
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "refusing to start in production" in lines[0]
    assert named in lines[0]
