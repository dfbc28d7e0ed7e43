"""`maas reconcile`: Redis against MongoDB for every account; exit 1 on drift.

Drift is a settled account whose balances differ, or, once the pipeline is idle, an
account MongoDB is left behind on; the dead letters carrying its events are named.
"""

from __future__ import annotations

import argparse

import orjson

from cli.connections import connect
from cli.terminal import ACCOUNT, progress_bar, safe
from services.ledger.usecases.reconcile import Reconciler
from shared.accounting.accounts import AccountStore


def register(reconcile: argparse.ArgumentParser) -> None:
    reconcile.add_argument("--account", type=ACCOUNT, help="only this account")
    reconcile.add_argument("--json", action="store_true", help="machine-readable output")
    reconcile.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with connect() as c:
        total = 1 if args.account else await AccountStore(c.db).count()
        with progress_bar(total, "accounts") as bar:
            reconciler = Reconciler(c.redis, c.db, c.sqs, c.queue_url, c.keys, c.settings.region)
            report = await reconciler.run(
                args.account, page_size=c.settings.reconcile_page_size, progress=bar.update
            )
    if args.json:
        print(
            orjson.dumps(
                {
                    "idle": report.idle,
                    "queue_messages": report.queue_messages,
                    "outbox_events": report.outbox_events,
                    "statuses": dict(report.statuses),
                    "accounts": [row.as_dict() for row in report.rows],
                }
            ).decode()
        )
    else:
        print(
            f"pipeline: {'idle' if report.idle else 'busy'} "
            f"(outbox {report.outbox_events} events, queue {report.queue_messages} messages)"
        )
        counts = ", ".join(f"{n} {status}" for status, n in sorted(report.statuses.items()))
        print(f"accounts: {counts or 'none'}; listed below unless ok")
        print(f"{'account':<24} {'redis':>10} {'mongo':>10} {'outbox':>8} {'drift':>7}  status")
        for row in report.rows:
            redis = "-" if row.redis is None else str(row.redis.balance)
            dead = f"  dead letters: {' '.join(row.dead_letters)}" if row.dead_letters else ""
            if row.reused:
                dead += f"  reused positions: {len(row.reused)} events"
            if row.stranded:
                dead += f"  stranded: {len(row.stranded)} events, {row.stranded_tokens:+} tokens"
            print(
                f"{safe(row.account):<24} {redis:>10} {row.mongo.balance:>10} {row.outbox:>8} "
                f"{row.drift:>7}  {row.status}{safe(dead)}"
            )
            if row.status.drifts:
                print(f"{'':<24} procedure: {row.status.procedure}")
    return 1 if report.drifting else 0
