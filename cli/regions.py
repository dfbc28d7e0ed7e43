"""`maas regions close`: give a region gone for good's tokens back to the pools."""

from __future__ import annotations

import argparse

from cli.connections import connect
from cli.terminal import argument, on_the_record, safe
from services.ledger.usecases.force_close import force_close
from shared.accounting.regions import REGION
from shared.errors import ApiError


def _region(raw: str) -> str:
    if not REGION.fullmatch(raw):
        raise ApiError("invalid_params", "region: 1-32 of a-z, 0-9 and -")
    return raw


def register(regions: argparse.ArgumentParser) -> None:
    actions = regions.add_subparsers(dest="action", required=True)
    closing = actions.add_parser(
        "close",
        help="a region lost for good: its books' tokens go back to the pools (the one "
        "overdraw the design allows: what it spent and never shipped, at most its slices)",
    )
    closing.add_argument("--region", required=True, type=argument(_region))
    on_the_record(closing)
    closing.set_defaults(run=close_region)


async def close_region(args: argparse.Namespace) -> int:
    async with connect() as c:
        returned = await force_close(c.db, args.region, args.reason, args.by)
    for each in returned:
        print(safe(f"{each.account}: {each.tokens} tokens back in the pool"))
    total = sum(each.tokens for each in returned)
    print(f"region {args.region} closed: {total} tokens of {len(returned)} accounts returned")
    return 0
