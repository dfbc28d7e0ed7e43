"""`maas accounts create`: create an account in MongoDB and hydrate it into Redis."""

from __future__ import annotations

import argparse

from cli.terminal import ACCOUNT, TOKENS
from shared.accounting.accounts import AccountExists
from shared.accounting.bank import TokenBank
from shared.settings import Settings
from shared.stores import mongo_client, redis_client


def register(accounts: argparse.ArgumentParser) -> None:
    actions = accounts.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create an account with a balance")
    create.add_argument("--id", required=True, type=ACCOUNT)
    create.add_argument("--tokens", required=True, type=TOKENS)
    create.set_defaults(run=create_account)


async def create_account(args: argparse.Namespace) -> int:
    settings = Settings()
    mongo, redis = mongo_client(settings), redis_client(settings)
    try:
        bank = TokenBank.for_settings(settings, redis, mongo[settings.mongo_db])
        try:
            await bank.accounts.create(args.id, args.tokens)
        except AccountExists:
            print(f"account {args.id!r} already exists")
            return 1
        if not settings.region:  # with a region, the tokens stay in the account's pool
            await bank.hydrate(args.id)
        print(f"created {args.id} with {args.tokens} tokens")
        return 0
    finally:
        await mongo.close()
        await redis.aclose()
