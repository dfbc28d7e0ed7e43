"""The last reconciliation, kept in Redis so every ledger replica shows the same books.

Whoever reconciles (the periodic run under its lease, or an operator from the console)
leaves the report here; the console reads it instead of scanning every account per
page view. Rows are the accounts that are not ok, capped so the report stays small.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from services.ledger.reconcile import Reconciler, Report
from shared.keys import Keys
from shared.stores import Redis

ROWS_KEPT = 1_000


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
) -> dict[str, Any]:
    document = report_document(await reconciler.run(page_size=page_size), by)
    await redis.set(Keys.books(), orjson.dumps(document))
    return document


async def last_books(redis: Redis) -> dict[str, Any] | None:
    raw = await redis.get(Keys.books())
    return orjson.loads(raw) if raw else None
