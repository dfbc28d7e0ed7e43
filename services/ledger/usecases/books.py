"""The last reconciliation, kept in Redis so every ledger replica shows the same books.

Whoever reconciles (the periodic run under its lease, or an operator from the console)
leaves the report here; the console reads it instead of scanning every account per
page view. Rows are the accounts that are not ok, capped so the report stays small.

The drift gauges behind the `MaasReconcileDrift` alert are the fleet's: only the periodic
run over every account sets them, never a look at one account.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from prometheus_client import Gauge

from services.ledger.usecases.reconcile import Reconciler, Report
from shared.keys import Keys
from shared.stores import Redis

ROWS_KEPT = 1_000

DRIFT = Gauge(
    "maas_reconcile_drift_tokens",
    "Sum of |Redis - MongoDB| over settled accounts at the last periodic reconciliation",
)
DRIFTING = Gauge("maas_reconcile_drifting_accounts", "Settled accounts whose balances differ")


def report_document(report: Report, by: str) -> dict[str, Any]:
    return {
        "at": time.time(),
        "by": by,
        "idle": report.idle,
        "queue_messages": report.queue_messages,
        "outbox_events": report.outbox_events,
        "statuses": dict(report.statuses),
        "rows": [row.as_dict() for row in report.rows[:ROWS_KEPT]],
        "rows_total": len(report.rows),
    }


async def reconcile_and_keep(
    reconciler: Reconciler, redis: Redis, page_size: int, by: str
) -> Report:
    """Reconcile every account and keep the report for the console."""
    report = await reconciler.run(page_size=page_size)
    await redis.set(Keys.books(), orjson.dumps(report_document(report, by)))
    return report


def export_drift(report: Report) -> None:
    """Publish a run over every account as the fleet's drift gauges."""
    DRIFT.set(report.drift_tokens)
    DRIFTING.set(len(report.drifting))


async def last_books(redis: Redis) -> dict[str, Any] | None:
    raw = await redis.get(Keys.books())
    return orjson.loads(raw) if raw else None
