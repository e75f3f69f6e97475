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


SERIES_CLASSES = 6  # s0..s5 in app.css: colours that follow the theme


def line_chart(
    series: list[tuple[str, list[tuple[float, float]]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
) -> Markup:
    """A line (with its points marked) per series of (x, y), on shared linear axes from 0;
    a legend names the series. Says so, instead of drawing, when there is nothing."""
    drawn = [(name, sorted(points)) for name, points in series if points]
    if not drawn:
        return Markup(f'<p class="muted">{escape(title)}: nothing to show yet.</p>')
    height, top, bottom, left, right = 220, 18, 34, 44, 12
    x_max = max(x for _, points in drawn for x, _ in points) or 1.0
    y_max = max(y for _, points in drawn for _, y in points) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def at(x: float, y: float) -> str:
        return f"{left + plot_w * x / x_max:.1f},{top + plot_h * (1 - y / y_max):.1f}"

    parts = [
        f'<svg class="chart line" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<path class="frame" d="M{left},{top} V{top + plot_h} H{left + plot_w}"/>',
        f'<text x="{left - 4}" y="{top + 4}" class="axis" text-anchor="end">'
        f"{escape(_number(y_max))}</text>",
        f'<text x="{left - 4}" y="{top + plot_h}" class="axis" text-anchor="end">0</text>',
        f'<text x="{left + plot_w}" y="{height - 18}" class="axis" text-anchor="end">'
        f"{escape(_number(x_max))}</text>",
        f'<text x="{left + plot_w / 2}" y="{height - 4}" class="axis" text-anchor="middle">'
        f"{escape(x_label)}</text>",
        f'<text x="4" y="12" class="axis">{escape(y_label)}</text>',
    ]
    for i, (name, points) in enumerate(drawn):
        cls = f"s{i % SERIES_CLASSES}"
        path = " ".join(at(x, y) for x, y in points)
        parts.append(
            f'<polyline class="{cls}" points="{path}"><title>{escape(name)}</title></polyline>'
        )
        for x, y in points:
            cx, cy = at(x, y).split(",")
            parts.append(
                f'<circle class="{cls}" cx="{cx}" cy="{cy}" r="3"><title>{escape(name)}: '
                f"{escape(_number(x))}, {escape(_number(y))}</title></circle>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch s{i % SERIES_CLASSES}"></span>{escape(name)}</li>'
        for i, (name, _) in enumerate(drawn)
    )
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')
