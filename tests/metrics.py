"""Reading this process's Prometheus counters in tests."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """The current value of a metric's sample (0 before it is first counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
