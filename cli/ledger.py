"""`maas ledger history`: an account's journal, newest first."""

from __future__ import annotations

import argparse
from typing import Any

from cli.connections import connect
from services.ledger.adapters.mongo import LedgerStore


def register(commands: Any) -> None:
    ledger = commands.add_parser("ledger", help="read the ledger journal")
    actions = ledger.add_subparsers(dest="action", required=True)
    history = actions.add_parser("history", help="an account's events, newest first")
    history.add_argument("--account", required=True)
    history.add_argument("--limit", type=int, default=20)
    history.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with connect() as c:
        entries = await LedgerStore(c.db).history(args.account, args.limit)
    if not entries:
        print(f"no ledger entries for {args.account}")
        return 1
    for e in entries:
        sign = "-" if e["type"] == "debit" else "+"
        print(
            f"{e['at'].isoformat()}  epoch {e['epoch']} seq {e['seq']:>6}  "
            f"{e['type']:<6} {sign}{e['amount']:<5} {e['reason']:<14} {e['request_id']}"
        )
    return 0
