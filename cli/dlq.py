"""`maas dlq list|show|redrive|purge`: the dead-letter queue, decoded, with reasons."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from cli.connections import connect
from services.ledger.adapters.dlq import DeadLetter, DeadLetters
from services.ledger.adapters.mongo import LedgerStore


def register(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="inspect and repair the dead-letter queue")
    actions = dlq.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per dead-lettered message")
    listing.set_defaults(run=list_letters)
    show = actions.add_parser("show", help="the decoded events of one message")
    show.add_argument("message_id")
    show.set_defaults(run=show_letter)
    for name, helptext in (
        ("redrive", "move messages back to the main queue, in order"),
        ("purge", "delete messages for good"),
    ):
        action = actions.add_parser(name, help=helptext)
        target = action.add_mutually_exclusive_group(required=True)
        target.add_argument("message_id", nargs="?")
        target.add_argument("--all", action="store_true", help="every message in the DLQ")
        if name == "purge":
            action.add_argument("--yes", action="store_true", help="confirm the deletion")
        action.set_defaults(run=redrive if name == "redrive" else purge)


def describe(letter: DeadLetter) -> dict[str, Any]:
    batch = letter.batch
    if batch is None:
        return {"shard": letter.group_id, "accounts": [], "seq_range": None}
    seqs = [e.seq for e in batch.events]
    return {
        "shard": f"s{batch.shard}",
        "accounts": sorted({e.account for e in batch.events}),
        "seq_range": [min(seqs), max(seqs)],
    }


async def list_letters(_: argparse.Namespace) -> int:
    async with connect() as c:
        store = LedgerStore(c.db)
        async with DeadLetters(c.sqs, c.dlq_url, c.queue_url).held() as letters:
            if not letters:
                print("the dead-letter queue is empty")
            for letter in letters:
                info = describe(letter)
                failure = await store.failure(letter.message_id) or {}
                seqs = info["seq_range"]
                print(
                    f"{letter.message_id}  shard={info['shard']}  "
                    f"accounts={','.join(info['accounts']) or '-'}  "
                    f"seq={f'{seqs[0]}-{seqs[1]}' if seqs else '-'}  "
                    f"receives={failure.get('receive_count', '?')}  "
                    f"age={letter.age_s:.0f}s  "
                    f"reason={failure.get('first_reason', 'unknown')}"
                )
    return 0


async def show_letter(args: argparse.Namespace) -> int:
    async with connect() as c, DeadLetters(c.sqs, c.dlq_url, c.queue_url).held() as letters:
        for letter in letters:
            if letter.message_id == args.message_id:
                batch = letter.batch
                body: Any = [e.to_dict() for e in batch.events] if batch else letter.body
                failure = await LedgerStore(c.db).failure(letter.message_id) or {}
                document = {
                    "message_id": letter.message_id,
                    **describe(letter),
                    "reason": failure.get("first_reason"),
                    "last_reason": failure.get("last_reason"),
                    "events": body,
                }
                print(orjson.dumps(document, option=orjson.OPT_INDENT_2, default=str).decode())
                return 0
    print(f"no message {args.message_id} in the dead-letter queue")
    return 1


async def redrive(args: argparse.Namespace) -> int:
    return await act_on_chosen(args, "redriven")


async def purge(args: argparse.Namespace) -> int:
    if not args.yes:
        print("purging deletes token events for good; add --yes to confirm")
        return 2
    return await act_on_chosen(args, "purged")


async def act_on_chosen(args: argparse.Namespace, done: str) -> int:
    """Redrive or purge the message named in `args` (or all), in queue order."""
    async with connect() as c:
        dead = DeadLetters(c.sqs, c.dlq_url, c.queue_url)
        action = dead.redrive if done == "redriven" else dead.purge
        async with dead.held() as letters:
            chosen = [m for m in letters if args.all or m.message_id == args.message_id]
            for letter in chosen:
                await action(letter)
                print(f"{done} {letter.message_id}")
    return 0 if chosen else 1
