"""Small line charts as SVG point lists, drawn on the server: no script, no build step."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chart:
    points: str  # for <polyline points="...">
    latest: float | None
    peak: float


def chart(
    series: list[tuple[float, float]], start: float, end: float, width: int, height: int
) -> Chart:
    """Scale (time, value) pairs into a width x height box; time runs from start to end."""
    if not series:
        return Chart("", None, 0.0)
    peak = max(value for _, value in series)
    span = max(end - start, 1e-9)
    top = peak or 1.0
    points = " ".join(
        f"{(at - start) / span * width:.1f},{height - value / top * height:.1f}"
        for at, value in series
    )
    return Chart(points, series[-1][1], peak)
