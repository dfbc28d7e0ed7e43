"""`maas ledger history|settle`: an account's journal, and settling an account."""

from __future__ import annotations

import argparse

from cli.connections import connect
from cli.terminal import ACCOUNT, argument, on_the_record, safe
from services.ledger.adapters.mongo import LedgerStore
from services.ledger.usecases.settle import settle
from shared.accounting.bank import AccountBusy, TokenBank, UnknownAccount
from shared.accounting.events import signed_amount
from shared.errors import ApiError
from shared.stores import MongoDoc

MAX_HISTORY = 1_000


def _limit(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_HISTORY:
        raise ApiError("invalid_params", f"limit: a whole number from 1 to {MAX_HISTORY}")
    return int(raw)


LIMIT = argument(_limit)


def register(ledger: argparse.ArgumentParser) -> None:
    actions = ledger.add_subparsers(dest="action", required=True)
    history = actions.add_parser("history", help="an account's events, newest first")
    history.add_argument("--account", required=True, type=ACCOUNT)
    history.add_argument("--limit", type=LIMIT, default=20, help=f"1-{MAX_HISTORY}")
    history.set_defaults(run=show_history)
    settling = actions.add_parser(
        "settle",
        help="re-load an account from MongoDB under a new epoch (after a purge)",
    )
    settling.add_argument(
        "--account",
        required=True,
        type=ACCOUNT,
        action="append",
        help="the account; repeat it to settle several in turn (after a failover, say)",
    )
    on_the_record(settling)
    settling.set_defaults(run=settle_account)


async def show_history(args: argparse.Namespace) -> int:
    async with connect() as c:
        entries = await LedgerStore(c.db).history(args.account, args.limit)
    if not entries:
        print(f"no ledger entries for {args.account}")
        return 1
    for e in entries:
        print(safe(describe(e)))
    return 0


def describe(e: MongoDoc) -> str:
    when = e["at"].isoformat()
    if e["type"] == "settle":
        before = e["redis_before"]
        applied = e["mongo_applied"]
        return (
            f"{when}  epoch {e['epoch']} seq {e['seq']:>6}  settle balance {e['balance']} "
            f"(Redis had {before['balance']} at epoch {before['epoch']} seq {before['seq']}, "
            f"MongoDB applied epoch {applied.get('epoch')} seq {applied.get('seq')}) "
            f"by {e['by']}: {e['reason']}"
        )
    note = ""
    if e.get("voided_for"):
        note = f"  void: {e.get('void_reason') or 'repeats credit ' + e['voided_for']}"
    elif e.get("adopted"):
        note = "  adopted by settle (its position was reused)"
    elif not e.get("counted", True):
        note = "  not counted (yet): its worker stopped before applying it"
    change = signed_amount(e["type"], e["amount"])
    return (
        f"{when}  epoch {e['epoch']} seq {e['seq']:>6}  "
        f"{e['type']:<6} {change:<+6} {e['reason']:<14} {e['request_id']}{note}"
    )


async def settle_account(args: argparse.Namespace) -> int:
    """Each `--account` in turn, on one connection; 1 if any could not be settled."""
    failed = 0
    async with connect() as c:
        store = LedgerStore(c.db)
        for account in args.account:
            failed += not await settle_one(c.bank(), store, account, args.reason, args.by)
    return 1 if failed else 0


async def settle_one(
    bank: TokenBank, store: LedgerStore, account: str, reason: str, by: str
) -> bool:
    try:
        settled = await settle(bank, store, account, reason, by)
    except UnknownAccount:
        print(f"no account {account!r}")
        return False
    except AccountBusy:
        print(f"charges kept moving {account!r}; try again")
        return False
    settlement, applied = settled.settlement, settled.mongo_applied
    for event, voided in settled.adopted:
        verdict = f", void: {voided.reason}" if voided else ""
        print(
            f"adopted {event.type} {event.amount} at reused epoch {event.epoch} seq {event.seq} "
            f"(event {event.id}{verdict})"
        )
    print(
        f"settled {account}: balance {settlement.before_balance} -> {settlement.balance}, "
        f"new epoch {settlement.epoch} (MongoDB had applied epoch {applied.get('epoch')} "
        f"seq {applied.get('seq')})"
    )
    return True
