"""Bar charts as inline SVG, drawn on the server: no chart library, no script. Labels are
escaped; colours come from the page's CSS variables, so charts follow the theme."""

from __future__ import annotations

from html import escape

from markupsafe import Markup


def bar_chart(
    points: list[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    when_zero: str | None = None,
) -> Markup:
    """A bar per point (label, value), with the largest value on the axis; `when_zero`, if
    given, is said instead of drawing a chart whose every bar is 0."""
    height, top, bottom, left = 180, 16, 28, 8
    if not points:
        return Markup(f'<p class="muted">{escape(title)}: nothing yet.</p>')
    if when_zero is not None and not any(value for _, value in points):
        return Markup(f'<p class="muted">{escape(when_zero)}</p>')
    peak = max(value for _, value in points) or 1.0
    step = (width - left) / len(points)
    bar = max(step * 0.8, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="12" class="axis">{escape(_number(peak))}{escape(unit)}</text>',
    ]
    plot = height - top - bottom
    for i, (label, value) in enumerate(points):
        h = plot * value / peak
        x = left + i * step
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {escape(_number(value))}{escape(unit)}</title></rect>"
        )
    for i in {0, len(points) // 2, len(points) - 1}:
        x = left + i * step
        parts.append(
            f'<text x="{x:.1f}" y="{height - 8}" class="axis">{escape(points[i][0])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}k"
    return f"{value:.4g}"
