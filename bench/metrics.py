"""Prometheus scrapes of the services, reduced to the few numbers the bench reports.

A gateway with several workers aggregates their metrics (prometheus-client's
multiprocess mode), so one scrape of any worker covers them all.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return samples


def fetch(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310
        return str(response.read().decode())


@dataclass(frozen=True)
class Scrape:
    samples: Samples

    def total(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls))

    def buckets(self, name: str) -> dict[float, float]:
        """Cumulative histogram buckets (le -> count), summed over label sets."""
        result: dict[float, float] = defaultdict(float)
        for (n, ls), v in self.samples.items():
            if n == f"{name}_bucket":
                result[float(dict(ls)["le"])] += v
        return dict(result)


def scrape(url: str) -> Scrape:
    """One scrape; a gateway with several workers answers for all of them (multiprocess)."""
    return Scrape(parse(fetch(url)))


def delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return after.total(name, **labels) - before.total(name, **labels)


def quantile(after: Scrape, before: Scrape, name: str, q: float) -> float | None:
    """Upper bound of the bucket holding quantile q of the observations in between."""
    a, b = after.buckets(name), before.buckets(name)
    edges = sorted(a)
    counts = [a[e] - b.get(e, 0.0) for e in edges]
    if not counts or counts[-1] <= 0:
        return None
    target = q * counts[-1]
    for edge, count in zip(edges, counts, strict=True):
        if count >= target:
            return edge
    return edges[-1]
