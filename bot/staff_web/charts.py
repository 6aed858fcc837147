"""Bar charts drawn on the server as SVG (no JavaScript, no chart library): every label and
value is escaped, and the drawing has a text alternative for screen readers."""

from __future__ import annotations

import html
from collections.abc import Sequence

from markupsafe import Markup


def bar_chart(
    bars: Sequence[tuple[str, int]], title: str, width: int = 640, height: int = 220
) -> Markup:
    """Vertical bars with their value on top and their label below."""
    top, bottom, side = 24, 36, 8
    count = max(1, len(bars))
    slot = (width - 2 * side) / count
    peak = max([value for _, value in bars] + [1])
    plot = height - top - bottom
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{html.escape(title)}</title>",
        f'<line x1="{side}" y1="{top + plot}" x2="{width - side}" y2="{top + plot}" '
        'stroke="#999" stroke-width="1"/>',
    ]
    for index, (label, value) in enumerate(bars):
        bar_height = plot * value / peak
        x = side + index * slot + slot * 0.15
        y = top + plot - bar_height
        middle = side + index * slot + slot / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar_height:.1f}" '
            'fill="#b5523b" rx="2"/>'
        )
        parts.append(
            f'<text x="{middle:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="12">'
            f"{value}</text>"
        )
        parts.append(
            f'<text x="{middle:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'font-size="11">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
