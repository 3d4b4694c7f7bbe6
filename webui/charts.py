"""Small server-side SVG charts: no script, nothing fetched, readable in grey."""

from __future__ import annotations

from markupsafe import Markup, escape

STYLES = (("#1f4e79", ""), ("#888", "6 4"), ("#c55a11", "2 3"), ("#2e7d32", "8 3 2 3"))


def lines(series: list[tuple[str, list[tuple[float, float | None]]]], width: int = 640,
          height: int = 200, unit: str = "", x_labels: list[tuple[float, str]] | None = None,
          x_range: tuple[float, float] | None = None, from_zero: bool = False) -> Markup:
    """`from_zero`: the y axis starts at 0 (power, energy); otherwise it fits the data with a
    margin (a temperature between 25 and 28 °C fills the chart, not its top tenth)."""
    pts = [(x, y) for _, s in series for x, y in s if y is not None]
    if not pts:
        return Markup('<p class="muted">–</p>')
    x0, x1 = x_range or (min(p[0] for p in pts), max(p[0] for p in pts))
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    if from_zero:
        y0, y1 = min(0.0, lo), hi
    else:
        margin = max((hi - lo) * 0.1, 0.5)
        y0, y1 = lo - margin, hi + margin
    # a flat series: a span of its own (y0 + 1 is y0 itself for a value like 1e20)
    y1 = y1 if y1 > y0 else y0 + max(1.0, abs(y0) * 1e-6)
    x1 = x1 if x1 > x0 else x0 + max(1.0, abs(x0) * 1e-6)
    pad_l, pad_b, pad_t = 48, 22, 8

    def sx(x):
        return pad_l + (x - x0) / (x1 - x0) * (width - pad_l - 8)

    def sy(y):
        return pad_t + (1 - (y - y0) / (y1 - y0)) * (height - pad_t - pad_b)

    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for frac in (0, 0.5, 1):
        yv = y0 + frac * (y1 - y0)
        out.append(f'<line x1="{pad_l}" x2="{width - 8}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{pad_l - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end" '
                   f'font-size="10">{yv:,.0f}</text>')
    for x, label in x_labels or []:
        out.append(f'<text x="{sx(x):.1f}" y="{height - 6}" text-anchor="middle" '
                   f'font-size="10">{escape(label)}</text>')
    legend_x = pad_l + 4
    for (name, s), (color, dash) in zip(series, STYLES):
        segs, cur = [], []
        for x, y in s:
            if y is None:
                if cur:
                    segs.append(cur)
                cur = []
            else:
                cur.append(f"{sx(x):.1f},{sy(y):.1f}")
        if cur:
            segs.append(cur)
        for seg in segs:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                       f'stroke-dasharray="{dash}" points="{" ".join(seg)}"/>')
        out.append(f'<text x="{legend_x}" y="{pad_t + 10}" font-size="11" fill="{color}">'
                   f'{escape(name)}{(" (" + escape(unit) + ")") if unit else ""}</text>')
        legend_x += 9 * (len(name) + len(unit) + 4)
    out.append("</svg>")
    return Markup("".join(out))
