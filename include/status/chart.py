"""A grouped bar chart of daily counts as inline SVG, drawn on the server.

The page's Content-Security-Policy allows no scripts and no external assets, so the chart is plain
SVG markup: one group of bars per day, a legend, a y axis scaled to the largest value, the value on
top of every non-zero bar, and a `<title>` per bar (the browser shows it on hover). Each bar carries
`data-series`, `data-day` and `data-value`, so a test (or a person with the inspector) reads the
numbers the bars were drawn from. Every text is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

WIDTH, HEIGHT = 560, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 36, 8, 30, 34


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _ceiling(value: int) -> int:
    """The axis maximum: the smallest of 1, 2, 5 × 10^n at or above `value` (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return max(1, m * step)
        step *= 10


def bar_chart(
    title: str,
    days: Sequence[str],
    series: Mapping[str, Sequence[int]],
    labels: Mapping[str, str],
    colors: Mapping[str, str],
) -> str:
    """`series` name -> one value per day (same order as `days`, ISO dates); `labels` and `colors`
    per series name. Returns an <svg> element scaled to its container (viewBox, width 100%)."""
    names = list(series)
    top = _ceiling(max((v for vals in series.values() for v in vals), default=0))
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    group_w = plot_w / max(1, len(days))
    bar_w = (group_w - 8) / max(1, len(names))
    base_y = _TOP + plot_h
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_e(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>'
    ]
    # legend
    x = _LEFT
    for name in names:
        out.append(
            f'<rect x="{x}" y="6" width="10" height="10" fill="{_e(colors[name])}"/>'
            f'<text x="{x + 14}" y="15" class="legend">{_e(labels[name])}</text>'
        )
        x += 24 + 7 * len(labels[name])
    # axis and grid: 0, half, top
    for frac in (0.0, 0.5, 1.0):
        y = base_y - frac * plot_h
        value = top * frac
        label = f"{value:g}" if value == int(value) else f"{value:.1f}"
        out.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_e(label)}</text>'
        )
    for i, day in enumerate(days):
        gx = _LEFT + i * group_w + 4
        out.append(
            f'<text x="{gx + (group_w - 8) / 2:.1f}" y="{base_y + 14}" class="axis" '
            f'text-anchor="middle">{_e(day[5:])}</text>'
        )
        for j, name in enumerate(names):
            value = int(series[name][i])
            h = plot_h * value / top
            bx, by = gx + j * bar_w, base_y - h
            out.append(
                f'<rect x="{bx:.1f}" y="{by:.1f}" width="{max(1.0, bar_w - 1):.1f}" height="{h:.1f}" '
                f'fill="{_e(colors[name])}" data-series="{_e(name)}" data-day="{_e(day)}" data-value="{value}">'
                f"<title>{_e(day)} {_e(labels[name])}: {value}</title></rect>"
            )
            if value:
                out.append(
                    f'<text x="{bx + bar_w / 2:.1f}" y="{by - 2:.1f}" class="value" text-anchor="middle">{value}</text>'
                )
    out.append(f'<text x="{_LEFT}" y="{HEIGHT - 4}" class="axis">day (UTC)</text></svg>')
    return "".join(out)
