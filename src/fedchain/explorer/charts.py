"""Line charts of a metric per round as inline SVG, drawn on the server.

Hand-written SVG (a polyline and one ``<circle>`` per round) instead of a JavaScript chart
library: the same markup works in the live page and in the ``--report`` file with nothing to
load, and a chart of a few hundred rounds is a few kilobytes.
"""

from __future__ import annotations

import math
from html import escape

__all__ = ["line_chart"]

_W, _H = 420, 180
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 12, 30
_MAX_DOTS = 400  # beyond this, rounds are still one point each but drawn without a title


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _ticks(lo: float, hi: float) -> list[float]:
    if hi == lo:
        return [lo]
    return [lo + (hi - lo) * i / 4 for i in range(5)]


def line_chart(name: str, points: list[tuple[int, float]]) -> str:
    """An SVG chart of ``points`` (round, value): one circle per round, axes labelled."""
    if not points:
        return ""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points if math.isfinite(p[1])] or [0.0]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    pad = (y_hi - y_lo) * 0.05 or abs(y_hi) * 0.05 or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (0.5 if x_hi == x_lo else (x - x_lo) / (x_hi - x_lo)) * plot_w

    def py(y: float) -> float:
        return _TOP + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h

    label = escape(name)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {_W} {_H}" data-metric="{label}" '
        f'aria-label="{label} per round" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for tick in _ticks(y_lo + pad, y_hi - pad):
        y = py(tick)
        parts.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'class="grid"/><text x="{_LEFT - 4}" y="{y + 4:.1f}" '
                     f'class="tick" text-anchor="end">{_fmt(tick)}</text>')  # fmt: skip
    for x in sorted({x_lo, x_hi, (x_lo + x_hi) // 2}):
        parts.append(f'<text x="{px(x):.1f}" y="{_H - 12}" class="tick" '
                     f'text-anchor="middle">{x}</text>')  # fmt: skip
    parts.append(f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_H - 1}" class="axis" '
                 'text-anchor="middle">round</text>')  # fmt: skip
    path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points if math.isfinite(y))
    parts.append(f'<polyline points="{path}" class="line"/>')
    titled = len(points) <= _MAX_DOTS
    for x, y in points:
        if not math.isfinite(y):
            continue
        title = f"<title>round {x}: {label} = {_fmt(y)}</title>" if titled else ""
        parts.append(f'<circle class="pt" data-round="{x}" cx="{px(x):.1f}" cy="{py(y):.1f}" '
                     f'r="3">{title}</circle>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)
