"""Charts as inline SVG, drawn on the server.

No chart library and no script: the console's Content-Security-Policy admits
neither inline styles nor third-party code, and a chart that is plain markup
prints, scales and reads without JavaScript. Colours are presentation attributes
(`fill=`), which the CSP does not govern. Every bar and point carries a <title>
(the browser shows it on hover, a screen reader reads it) and `data-label` /
`data-value` attributes; the page puts the same numbers in a table beside each chart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 14, 44
INK, MUTED, GRID = "#1d232a", "#5b6670", "#dde3ea"
PALETTE = ("#0b5cad", "#f59e0b", "#1a7f37", "#a4161a", "#6f42c1", "#5b6670", "#0f766e", "#b45309")


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str


Format = Callable[[float], str]


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least `top` (1, 2 or 5 times a power of ten apart)."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if step < 1 and float(top).is_integer() and top <= count:
        step = 1  # counts: no half orders
    return [step * i for i in range(math.ceil(top / step - 1e-9) + 1)]


class _Frame:
    def __init__(self, labels: Sequence[str], top: float, fmt: Format, unit: str):
        self.labels = list(labels)
        self.ticks = _ticks(top)
        self.top = self.ticks[-1] or 1
        self.fmt, self.unit = fmt, unit
        self.plot_w = WIDTH - LEFT - RIGHT
        self.plot_h = HEIGHT - TOP - BOTTOM
        self.slot = self.plot_w / max(1, len(self.labels))

    def y(self, value: float) -> float:
        return TOP + self.plot_h * (1 - value / self.top)

    def x_center(self, index: int) -> float:
        return LEFT + self.slot * (index + 0.5)

    def axes(self) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{GRID}" stroke-width="1"/>')
            parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                         f'fill="{MUTED}">{escape(self.fmt(tick))}</text>')
        parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + self.plot_h}" '
                     f'stroke="{MUTED}" stroke-width="1"/>')
        parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + self.plot_h}" '
                     f'y2="{TOP + self.plot_h}" stroke="{MUTED}" stroke-width="1"/>')
        # Every label when they fit, else every other one (the table has them all).
        every = 1 if self.slot >= 40 else 2
        for i, label in enumerate(self.labels):
            if i % every == 0:
                parts.append(f'<text class="label" x="{self.x_center(i):.1f}" y="{TOP + self.plot_h + 16}" '
                             f'text-anchor="middle" font-size="11" fill="{MUTED}">{escape(label)}</text>')
        if self.unit:
            parts.append(f'<text class="unit" x="{LEFT}" y="{HEIGHT - 6}" font-size="11" fill="{MUTED}">'
                         f'{escape(self.unit)}</text>')
        return parts


def _svg(chart_id: str, title: str, description: str, kind: str, parts: list[str],
         legend: Sequence[Series] = ()) -> Markup:
    legend_parts = []
    x = WIDTH - RIGHT
    for series in reversed(legend):
        # Right-aligned legend under the axis: a swatch and the series name.
        width = 18 + 7 * len(series.name)
        x -= width
        legend_parts.append(f'<g class="legend-item"><rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" '
                            f'fill="{series.color}"/><text x="{x + 14}" y="{HEIGHT - 7}" font-size="11" '
                            f'fill="{INK}">{escape(series.name)}</text></g>')
    # Every text in the SVG went through escape() above; numbers and colours are ours.
    return Markup(  # noqa: S704
        f'<svg id="{escape(chart_id)}" class="chart-svg" data-chart="{kind}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="{escape(chart_id)}-title '
        f'{escape(chart_id)}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>'
        + "".join(parts) + "".join(legend_parts) + "</svg>"
    )


def bar_chart(chart_id: str, title: str, labels: Sequence[str], values: Sequence[float], *,
              colors: Sequence[str] | None = None, fmt: Format = _number, unit: str = "") -> Markup:
    """One bar per label."""
    frame = _Frame(labels, max([0, *values]), fmt, unit)
    parts = frame.axes()
    width = frame.slot * 0.64
    for i, (label, value) in enumerate(zip(labels, values)):
        color = (colors or PALETTE)[i % len(colors or PALETTE)]
        y = frame.y(value)
        parts.append(
            f'<rect class="bar" x="{frame.x_center(i) - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{TOP + frame.plot_h - y:.1f}" fill="{color}" data-label="{escape(label)}" '
            f'data-value="{value:g}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>')
        if value:
            parts.append(f'<text class="value" x="{frame.x_center(i):.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                         f'font-size="11" fill="{INK}">{escape(fmt(value))}</text>')
    description = ", ".join(f"{label}: {fmt(value)}" for label, value in zip(labels, values))
    return _svg(chart_id, title, description, "bar", parts)


def stacked_bar_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *,
                      fmt: Format = _number, unit: str = "") -> Markup:
    """One bar per label, each split into the series' values, bottom to top."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    frame = _Frame(labels, max([0, *totals]), fmt, unit)
    parts = frame.axes()
    width = frame.slot * 0.64
    for i, label in enumerate(labels):
        base = 0.0
        for s in series:
            value = s.values[i] or 0
            if value:
                y_top, y_bottom = frame.y(base + value), frame.y(base)
                share = f" ({value / totals[i]:.0%})" if totals[i] else ""
                parts.append(
                    f'<rect class="bar" x="{frame.x_center(i) - width / 2:.1f}" y="{y_top:.1f}" '
                    f'width="{width:.1f}" height="{y_bottom - y_top:.1f}" fill="{s.color}" '
                    f'data-label="{escape(label)}" data-series="{escape(s.name)}" data-value="{value:g}">'
                    f'<title>{escape(label)}, {escape(s.name)}: {escape(fmt(value))}{share}</title></rect>')
            base += value
    description = "; ".join(
        f"{label}: " + ", ".join(f"{s.name} {fmt(s.values[i] or 0)}" for s in series)
        for i, label in enumerate(labels))
    return _svg(chart_id, title, description, "stacked", parts, legend=series if len(series) > 1 else ())


def line_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *,
               fmt: Format = _number, unit: str = "", top: float | None = None) -> Markup:
    """A line per series; a None value is a gap (no data that week), not a zero."""
    values = [v for s in series for v in s.values if v is not None]
    frame = _Frame(labels, top if top is not None else max([0, *values]), fmt, unit)
    parts = frame.axes()
    for s in series:
        run: list[str] = []
        runs: list[list[str]] = []
        for i, value in enumerate(s.values):
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{frame.x_center(i):.1f},{frame.y(value):.1f}")
        if run:
            runs.append(run)
        for points in runs:
            if len(points) > 1:
                parts.append(f'<polyline class="line" points="{" ".join(points)}" fill="none" '
                             f'stroke="{s.color}" stroke-width="2"/>')
        for i, (label, value) in enumerate(zip(labels, s.values)):
            if value is None:
                continue
            parts.append(
                f'<circle class="point" cx="{frame.x_center(i):.1f}" cy="{frame.y(value):.1f}" r="4" '
                f'fill="{s.color}" data-label="{escape(label)}" data-series="{escape(s.name)}" '
                f'data-value="{value:g}"><title>{escape(label)}: {escape(fmt(value))}</title></circle>')
    description = "; ".join(
        f"{s.name}: " + ", ".join(f"{label} {fmt(v) if v is not None else 'no data'}"
                                  for label, v in zip(labels, s.values))
        for s in series)
    return _svg(chart_id, title, description, "line", parts, legend=series if len(series) > 1 else ())
