"""Pipeline: the last hour of outbox, relay, queue and ledger samples as small charts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.ledger.console.charts import Chart, chart
from services.ledger.console.deps import console
from services.ledger.pipeline import WINDOW_S, Sample, per_bucket

routes = web.RouteTableDef()
WIDE, SMALL = (480, 120), (120, 30)
METRICS = ("outbox", "relay_lag", "queue", "dlq", "applied", "ledger_lag")


@routes.get("/pipeline", name="pipeline")
async def pipeline(request: web.Request) -> web.Response:
    c = console(request)
    end = time.time()
    found = await asyncio.gather(*(c.samples.since(m, end - WINDOW_S) for m in METRICS))
    samples = dict(zip(METRICS, found, strict=True))
    # The charts span the last hour, or less while the samples are younger than that.
    start = min((s[0].at for s in found if s), default=end - WINDOW_S)
    interval = float(c.settings.pipeline_sample_interval_s or 10)

    def draw(series: list[tuple[float, float]], size: tuple[int, int] = WIDE) -> Chart:
        return chart(series, start, end, *size)

    outbox = samples["outbox"]
    shards = len(outbox[-1].values) if outbox else 0
    applied = per_bucket(samples["applied"], interval)
    lag = per_bucket(samples["ledger_lag"], interval)
    charts: dict[str, Any] = {
        "outbox": draw([(s.at, sum(s.values)) for s in outbox]),
        "relay_lag": draw(single(samples["relay_lag"])),
        "queue": draw(single(samples["queue"])),
        "dlq": draw(single(samples["dlq"])),
        "apply_rate": draw([(at, v[0] / interval) for at, v in applied.items()]),
        "ledger_lag": draw([(at, v[0] / v[1]) for at, v in lag.items() if v[1]]),
        "shards": [
            draw([(s.at, s.values[n]) for s in outbox if len(s.values) > n], SMALL)
            for n in range(shards)
        ],
    }
    return aiohttp_jinja2.render_template(
        "pipeline.html",
        request,
        {
            "charts": charts,
            "wide": WIDE,
            "small": SMALL,
            "refresh_s": int(interval),
            "minutes": max(1, round((end - start) / 60)),
        },
    )


def single(samples: list[Sample]) -> list[tuple[float, float]]:
    return [(s.at, s.values[0]) for s in samples]
