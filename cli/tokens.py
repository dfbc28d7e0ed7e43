"""`maas token`: a JWT signed with the local dev secret, for demos and scripts."""

from __future__ import annotations

import argparse

from cli.terminal import ACCOUNT
from shared.auth import issue_dev_token
from shared.settings import Settings


def register(token: argparse.ArgumentParser) -> None:
    token.add_argument("--sub", required=True, type=ACCOUNT, help="account id")
    token.add_argument("--roles", default="", help="comma-separated roles, e.g. ai,admin")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    print(issue_dev_token(Settings(), args.sub, roles, args.ttl))
    return 0
