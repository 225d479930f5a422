"""Charts for report.html as inline SVG: drawn here, in text, with nothing to fetch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Final

WIDTH: Final = 720
_FONT: Final = 'font-family="system-ui, sans-serif" font-size="12"'


def bars(items: Sequence[tuple[str, int]], *, label: str, width: int = WIDTH) -> str:
    """Horizontal bars, one a line: its label left, its bar, its count."""
    row, left, right = 22, 300, 60
    top = max((count for _, count in items), default=0) or 1
    height = row * len(items) + 4
    drawn = []
    for i, (text, count) in enumerate(items):
        y = i * row + 2
        length = max(1.0, (width - left - right) * count / top)
        drawn.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(_cut(text, 46))}'
            f"<title>{escape(text)}</title></text>"
            f'<rect class="bar" x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 6}"/>'
            f'<text x="{left + length + 6:.1f}" y="{y + 15}">{count}</text>'
        )
    return _svg(width, height, label, "".join(drawn))


def lines(
    xs: Sequence[float],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    label: str,
    unit: str,
    width: int = WIDTH,
    height: int = 200,
) -> str:
    """One line per named series over ``xs`` (seconds); a gap where a value is None."""
    left, bottom, top_pad = 56, 28, 10
    known = [v for _, values in series for v in values if v is not None]
    y_max = _nice(max(known, default=0.0))
    x_max = max(xs, default=0.0) or 1.0
    plot_w, plot_h = width - left - 12, height - bottom - top_pad

    def at(x: float, y: float) -> str:
        return f"{left + plot_w * x / x_max:.1f},{top_pad + plot_h * (1 - y / y_max):.1f}"

    parts = [
        f'<line class="axis" x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" '
        f'y2="{top_pad + plot_h}"/>',
        f'<line class="axis" x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}"/>',
        f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end">{y_max:g}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end">0</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h / 2 + 4:.0f}" text-anchor="end">'
        f"{escape(unit)}</text>",
        f'<text x="{left}" y="{height - 8}">0 s</text>',
        f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end">{x_max:.3g} s</text>',
    ]
    for index, (name, values) in enumerate(series):
        for run in _runs(xs, values):
            if len(run) == 1:  # a lone point: a dot
                x, y = at(*run[0]).split(",")
                parts.append(f'<circle class="s{index}" cx="{x}" cy="{y}" r="2.5"/>')
                continue
            points = " ".join(at(x, y) for x, y in run)
            parts.append(
                f'<polyline class="line s{index}" points="{points}">'
                f"<title>{escape(name)}</title></polyline>"
            )
        parts.append(
            f'<text class="key s{index}" x="{left + 10 + 150 * index}" y="{top_pad + 12}">'
            f"— {escape(name)}</text>"
        )
    return _svg(width, height, label, "".join(parts))


def shares(parts: Sequence[tuple[str, int]], *, label: str, width: int = 160) -> str:
    """One bar split in proportion to ``parts`` (classes p0, p1...), for a table cell."""
    total = sum(count for _, count in parts) or 1
    x, drawn = 0.0, []
    for index, (name, count) in enumerate(parts):
        share = width * count / total
        if count:
            drawn.append(
                f'<rect class="p{index}" x="{x:.1f}" y="0" width="{share:.1f}" height="14">'
                f"<title>{escape(name)}: {count}</title></rect>"
            )
        x += share
    return _svg(width, 14, label, "".join(drawn))


def _runs(xs: Sequence[float], values: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """The series split where a value is missing."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, values, strict=True):
        if y is None:
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def _nice(value: float) -> float:
    """The axis' top: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(step * scale for step in (1, 2, 5, 10) if value <= step * scale * (1 + 1e-9))


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _svg(width: int, height: int, label: str, body: str) -> str:
    return (
        f'<svg role="img" aria-label="{escape(label)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {_FONT}>{body}</svg>'
    )
