"""A stacked bar chart of counts per hour, as the geometry an inline <svg> needs: drawn by the
server, no script, no external asset (the console's CSP allows neither). One bar per hour, one
segment per series (a success series first, then each failure reason), a legend with totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from zoneinfo import ZoneInfo

from ops.activity import Hourly

WIDTH, HEIGHT = 900, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 26  # room for the count axis and the hour labels
SUCCESS_COLOUR = "#1f7a3a"
FAILURE_COLOURS = ("#c7000b", "#b54708", "#7a5af8", "#0e7090", "#c11574", "#a15c07", "#3538cd", "#667085")


@dataclass(frozen=True)
class Segment:
    key: str
    count: int
    y: float
    height: float
    colour: str


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    hour: str  # "HH:00" in the operator's zone
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, str, int], ...]  # (series key, colour, total)
    y_ticks: tuple[tuple[float, int], ...]  # (y, count)
    x_labels: tuple[tuple[float, str], ...]
    total: int
    failures: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 4 x 10^n at least `value` (at least 4): the axis reads 0, half, top
    in whole numbers (0/2/4, 0/5/10, 0/10/20, 0/20/40, ...)."""
    step = 1
    while True:
        for factor in (1, 2, 4):
            if factor * step >= max(value, 4):
                return factor * step
        step *= 10


def stacked_bars(hourly: Hourly, success_key: str, zone: str) -> Chart:
    failures = sorted((k for k in hourly.series if k != success_key), key=lambda k: -sum(hourly.series[k]))
    order = ([success_key] if success_key in hourly.series else []) + failures
    colours = {success_key: SUCCESS_COLOUR}
    colours.update({key: FAILURE_COLOURS[min(i, len(FAILURE_COLOURS) - 1)] for i, key in enumerate(failures)})
    top = _nice_ceiling(max(hourly.totals, default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(hourly.starts), 1)
    tz = ZoneInfo(zone)
    bars = []
    for i, start in enumerate(hourly.starts):
        y = float(HEIGHT - BOTTOM)
        segments = []
        for key in order:
            count = hourly.series[key][i]
            if count:
                height = count / top * plot_height
                y -= height
                segments.append(Segment(key, count, round(y, 2), round(height, 2), colours[key]))
        hour = start.replace(tzinfo=start.tzinfo or UTC).astimezone(tz).strftime("%H:00")
        bars.append(Bar(round(LEFT + i * slot + slot * 0.15, 2), round(slot * 0.7, 2), hour, hourly.totals[i],
                        tuple(segments)))
    ticks = tuple((round(HEIGHT - BOTTOM - value / top * plot_height, 2), value) for value in (0, top // 2, top))
    labels = tuple((round(bar.x + bar.width / 2, 2), bar.hour) for i, bar in enumerate(bars) if i % 3 == 0)
    legend = tuple((key, colours[key], sum(hourly.series[key])) for key in order)
    return Chart(tuple(bars), legend, ticks, labels, hourly.total, sum(sum(hourly.series[k]) for k in failures))
