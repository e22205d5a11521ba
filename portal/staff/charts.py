"""Charts for the staff dashboard, drawn on the server as inline SVG: no script, no CDN, nothing to load.

Each chart is an `<svg role="img">` named by its `<title>` and described by a `<desc>` that states every
value in words, so a screen reader gets the same facts as the eye; each bar also carries its own `<title>`
(a tooltip on hover). Colours are SVG presentation attributes, not `style`, so the strict
Content-Security-Policy (no inline styles) holds. Every string is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

BAR = "#1f5f99"  # 7.0:1 against white: readable where a value is printed on it
WARN = "#a33a1a"
TRACK = "#e3e8ee"
TEXT = "#1b1f24"


@dataclass(frozen=True)
class Bar:
    label: str
    value: int  # minor units or counts: only its size relative to the others matters
    text: str  # the value as people read it ("$12,300.00", "42")
    warn: bool = False  # drawn in the warning colour (overdue buckets)


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar], *, width: int = 560, row: int = 30,
              label_width: int = 120, value_width: int = 130) -> Markup:
    """Horizontal bars, one per item, scaled to the largest value; an empty or all-zero chart says so."""
    ids = f"{escape(chart_id)}-title {escape(chart_id)}-desc"
    words = "; ".join(f"{b.label}: {b.text}" for b in bars) or "no data"
    height = max(1, len(bars)) * row + 8
    parts = [f'<svg class="chart" role="img" aria-labelledby="{ids}" viewBox="0 0 {width} {height}" '
             f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
             f'<desc id="{escape(chart_id)}-desc">{escape(words)}</desc>']
    top = max((b.value for b in bars), default=0)
    span = width - label_width - value_width
    if not bars or top <= 0:
        parts.append(f'<text x="0" y="20" fill="{TEXT}" font-size="14">Nothing to show yet</text>')
    for i, b in enumerate(bars):
        y = i * row + 4
        size = 0 if top <= 0 else max(1 if b.value > 0 else 0, round(span * max(b.value, 0) / top))
        parts.append(
            f'<g><title>{escape(b.label)}: {escape(b.text)}</title>'
            f'<text x="0" y="{y + row * 0.6:.0f}" fill="{TEXT}" font-size="14">{escape(b.label)}</text>'
            f'<rect x="{label_width}" y="{y + 4}" width="{span}" height="{row - 10}" fill="{TRACK}"/>'
            f'<rect x="{label_width}" y="{y + 4}" width="{size}" height="{row - 10}" '
            f'fill="{WARN if b.warn else BAR}"/>'
            f'<text x="{width}" y="{y + row * 0.6:.0f}" fill="{TEXT}" font-size="14" text-anchor="end">'
            f'{escape(b.text)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def meter(chart_id: str, title: str, fraction: float | None, text: str, *, width: int = 560) -> Markup:
    """One share as a filled track (0..1); None: no basis yet (drawn empty, said in words)."""
    shown = 0.0 if fraction is None else min(max(fraction, 0.0), 1.0)
    words = text if fraction is not None else "no data yet"
    return Markup(
        f'<svg class="chart meter" role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        f'viewBox="0 0 {width} 24" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(words)}</desc>'
        f'<rect x="0" y="4" width="{width}" height="16" fill="{TRACK}"/>'
        f'<rect x="0" y="4" width="{round(width * shown)}" height="16" fill="{BAR}"/></svg>')
