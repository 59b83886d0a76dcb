"""A small, dependency-free SVG line chart: audience size over time.

>>> import datetime as dt
>>> t = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
>>> svg = line_chart([(t, 3), (t + dt.timedelta(hours=1), 5)], title="vip")
>>> svg.startswith("<svg") and "<polyline" in svg and svg.rstrip().endswith("</svg>")
True
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Final
from xml.sax.saxutils import escape

__all__ = ["line_chart", "nice_ticks"]

WIDTH: Final = 720
HEIGHT: Final = 360
_LEFT: Final = 64
_RIGHT: Final = 24
_TOP: Final = 40
_BOTTOM: Final = 56


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (1, 2 or 5 times a power of ten apart).

    >>> nice_ticks(47)
    [0, 10, 20, 30, 40, 50]
    >>> nice_ticks(0)
    [0, 1]
    """
    if top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks: list[float] = []
    value: float = 0
    while True:
        ticks.append(int(value) if float(value).is_integer() else round(value, 10))
        if value >= top:
            return ticks
        value += step


def _time_label(moment: dt.datetime, span: dt.timedelta) -> str:
    if span <= dt.timedelta(days=2):
        return moment.strftime("%H:%M")
    return moment.strftime("%m-%d %H:%M")


def line_chart(
    points: Sequence[tuple[dt.datetime, int]],
    *,
    title: str,
    y_label: str = "users in the audience",
) -> str:
    """An SVG document drawing ``points`` (time, value) as a line, with axes and labels."""
    if not points:
        raise ValueError("a chart needs at least one point")
    times = [moment for moment, _ in points]
    start, end = min(times), max(times)
    span = end - start
    seconds = span.total_seconds() or 1.0
    ticks = nice_ticks(max(value for _, value in points))
    top = ticks[-1]
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM

    def x(moment: dt.datetime) -> float:
        return _LEFT + plot_w * ((moment - start).total_seconds() / seconds)

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2:.1f}" y="24" text-anchor="middle" font-size="15">'
        f"{escape(title)}</text>",
    ]
    for tick in ticks:
        ty = y(tick)
        parts.append(
            f'<line x1="{_LEFT}" y1="{ty:.1f}" x2="{WIDTH - _RIGHT}" y2="{ty:.1f}" '
            'stroke="#e3e3e3"/>'
        )
        parts.append(f'<text x="{_LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick}</text>')
    label_every = max(1, math.ceil(len(points) / 8))
    for index, moment in enumerate(times):
        if index % label_every and index != len(times) - 1:
            continue
        tx = x(moment)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{HEIGHT - _BOTTOM}" x2="{tx:.1f}" '
            f'y2="{HEIGHT - _BOTTOM + 5}" stroke="#555"/>'
        )
        parts.append(
            f'<text x="{tx:.1f}" y="{HEIGHT - _BOTTOM + 18}" text-anchor="middle">'
            f"{escape(_time_label(moment, span))}</text>"
        )
    parts.append(
        f'<line x1="{_LEFT}" y1="{HEIGHT - _BOTTOM}" x2="{WIDTH - _RIGHT}" '
        f'y2="{HEIGHT - _BOTTOM}" stroke="#555"/>'
    )
    parts.append(
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{HEIGHT - _BOTTOM}" stroke="#555"/>'
    )
    parts.append(
        f'<text x="{WIDTH / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle">'
        f"time (UTC, {escape(start.strftime('%Y-%m-%d %H:%M'))} to "
        f"{escape(end.strftime('%Y-%m-%d %H:%M'))})</text>"
    )
    parts.append(
        f'<text x="16" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_TOP + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    coords = " ".join(f"{x(moment):.1f},{y(value):.1f}" for moment, value in points)
    parts.append(f'<polyline fill="none" stroke="#1f6fb2" stroke-width="2" points="{coords}"/>')
    for moment, value in points:
        parts.append(
            f'<circle cx="{x(moment):.1f}" cy="{y(value):.1f}" r="3" fill="#1f6fb2">'
            f"<title>{escape(moment.isoformat())}: {value}</title></circle>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
