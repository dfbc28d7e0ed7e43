"""`maas dlq list|show|redrive|purge`: the dead-letter queue, decoded, with reasons.

All four act on the ledger's index of dead letters in MongoDB, where dead letters live
(the ledger moves what reaches the SQS DLQ into it within seconds; `redrive` and `purge`
do so first), so looking never hides a message from anyone.
"""

from __future__ import annotations

import argparse
import time

import orjson

from cli.connections import Connections, connect
from cli.terminal import progress_bar, safe, safe_json
from services.ledger.adapters.dlq import Walk
from services.ledger.adapters.mongo import LedgerStore
from services.ledger.usecases.dead_letters import letter_document, operator_walk
from shared.sqs import queue_depth


def register(dlq: argparse.ArgumentParser) -> None:
    actions = dlq.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per dead-lettered message")
    listing.set_defaults(run=list_letters)
    show = actions.add_parser("show", help="the decoded events of one message")
    show.add_argument("message_id")
    show.set_defaults(run=show_letter)
    for name, helptext in (
        ("redrive", "apply messages as the ledger would, in queue order"),
        ("purge", "delete messages for good (then `maas ledger settle` their accounts)"),
    ):
        action = actions.add_parser(name, help=helptext)
        target = action.add_mutually_exclusive_group(required=True)
        target.add_argument("message_id", nargs="?")
        target.add_argument("--all", action="store_true", help="every message in the DLQ")
        if name == "purge":
            action.add_argument("--yes", action="store_true", help="confirm the deletion")
        action.set_defaults(run=redrive if name == "redrive" else purge)


async def list_letters(_: argparse.Namespace) -> int:
    async with connect() as c:
        letters = await LedgerStore(c.db).dead_letter_index()
        depth = await queue_depth(c.sqs, c.dlq_url)
    if not letters:
        print("the dead-letter queue is empty")
    now = time.time()
    for letter in letters:
        seqs = letter.get("seq_range")
        shard = letter.get("shard")
        line = (
            f"{letter['_id']}  shard={f's{shard}' if shard is not None else letter['group_id']}  "
            f"accounts={','.join(letter.get('accounts', [])) or '-'}  "
            f"seq={f'{seqs[0]}-{seqs[1]}' if seqs else '-'}  "
            f"receives={letter.get('receive_count', '?')}  "
            f"age={now - letter['dead_since'].timestamp():.0f}s  "
            f"reason={letter.get('first_reason') or 'unknown'}"
        )
        print(safe(line))
    if depth:
        print(
            f"note: the SQS DLQ holds about {depth} messages on their way into this list "
            "(a few seconds; most are listed already); `redrive` and `purge` take them first"
        )
    return 0


async def show_letter(args: argparse.Namespace) -> int:
    async with connect() as c:
        letter = await LedgerStore(c.db).dead_letter(args.message_id)
    if letter is None:
        print(f"no message {safe(args.message_id)} in the dead-letter queue")
        return 1
    document = orjson.dumps(letter_document(letter), option=orjson.OPT_INDENT_2, default=str)
    print(safe_json(document.decode()))
    return 0


async def redrive(args: argparse.Namespace) -> int:
    async with connect() as c:
        walk_over = operator_walk(c.sqs, c.dlq_url, c.db, c.bank())
        with progress_bar(await total(c, args), "messages") as bar:
            walk = await walk_over.redrive(chosen(args), bar.update)
    return report(walk, "redriven", args)


async def purge(args: argparse.Namespace) -> int:
    if not args.yes:
        print("purging deletes token events for good; add --yes to confirm")
        return 2
    async with connect() as c:
        walk_over = operator_walk(c.sqs, c.dlq_url, c.db, c.bank())
        with progress_bar(await total(c, args), "messages") as bar:
            walk = await walk_over.purge(chosen(args), bar.update)
    return report(walk, "purged", args)


async def total(c: Connections, args: argparse.Namespace) -> int:
    """What a walk will go through: every dead letter, or one message."""
    if not args.all:
        return 1
    return max(await LedgerStore(c.db).dead_letter_count(), await queue_depth(c.sqs, c.dlq_url))


def chosen(args: argparse.Namespace) -> set[str] | None:
    return None if args.all else {args.message_id}


def report(walk: Walk, done: str, args: argparse.Namespace) -> int:
    for message_id in walk.done:
        print(f"{done} {safe(message_id)}")
    for message_id, reason in walk.left.items():
        print(safe(f"left {message_id}: {reason}"))
    if not args.all and not walk.done and not walk.left:
        print(f"no message {safe(args.message_id)} in the dead-letter queue (`maas dlq list`)")
        return 1
    return 1 if walk.left else 0
