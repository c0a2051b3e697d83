"""Server-side SVG charts: pure functions from numbers and labels to one `<figure class="chart-figure">`.

The figure holds the inline `<svg role="img">` in a focusable box that scrolls sideways on a phone (the chart
keeps a readable minimum width), and a "Show the data" `<details>` with the same values as a table, whose
first column links to `x_links`: screen readers read the table, and nothing inside the image is focusable
(links nested in a `role="img"` are unnamed Tab stops a screen reader cannot announce).

No JavaScript, no CDN, no Django models. Every piece of text that reaches the markup (title, series
names, x labels, links, colours) goes through `_text`/`_attr` (XML escaping) here; everything else is
numbers formatted by this module. So each builder returns a `SafeString` marked safe in one place,
`_figure`, and templates print it with `{{ chart }}`.

    line_chart([Series("p95", [120, None, 140])], x_labels=["#1", "#2", "#3"], y_unit="ms", title="p95")

Values may be None (a gap in a line, nothing in a bar). Empty data gives an SVG saying "No data".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

__all__ = [
    "PALETTE",
    "SCENARIO_COLORS",
    "SEVERITY_COLORS",
    "Series",
    "bar_chart",
    "line_chart",
    "stacked_bar_chart",
]

# The same colours as portal.css (.sev-*, --ok, --bad, --warn, --sev-low).
SEVERITY_COLORS = {
    "CRITICAL": "#7b1fa2",
    "HIGH": "#c62828",
    "MEDIUM": "#9a5b00",
    "LOW": "#3d66b0",
    "UNKNOWN": "#667085",
}
SCENARIO_COLORS = {"passed": "#1a7f37", "failed": "#c62828", "other": "#9a5b00"}
PALETTE = ["#2f5bd3", "#c62828", "#1a7f37", "#9a5b00", "#7b1fa2", "#00838f", "#667085", "#d81b60", "#5d4037"]

AXIS_COLOR = "#98a2b3"
GRID_COLOR = "#e3e6ec"
TEXT_COLOR = "#667085"
FONT = 'font-family="system-ui, sans-serif"'
MAX_X_LABELS = 10
MAX_LABEL_CHARS = 18
# On a narrow screen the chart scrolls inside its box rather than shrink below this share of its drawn size,
# so that its 10 px labels stay 8 px or more.
MIN_SCALE = 0.8
_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-z]{3,20}")


@dataclass(frozen=True)
class Series:
    """One named sequence of values, one per x label; None where there is no value."""

    name: str
    values: Sequence[float | None]
    color: str = ""


# --- public builders -------------------------------------------------------------------------------------------


def line_chart(
    series: Sequence[Series],
    *,
    x_labels: Sequence[str],
    y_unit: str = "",
    width: int = 720,
    height: int = 240,
    title: str = "",
    x_name: str = "",
    x_links: Sequence[str] | None = None,
) -> SafeString:
    """One `<path>` per series (broken at None values) with a `<circle>` and tooltip per point."""
    series = _colored(series)
    if _is_empty(series, x_labels):
        return _empty(width, height, title)
    frame = _Frame(width, height, title, series)
    values = [v for s in series for v in s.values if v is not None]
    scale = _Scale(min(values), max(values))
    count = len(x_labels)
    parts = [*frame.header(), *frame.y_axis(scale, y_unit), *frame.x_axis(x_labels, centered=False)]
    for item in series:
        commands, points = [], []
        pen_down = False
        for index, value in enumerate(item.values[:count]):
            if value is None:
                pen_down = False
                continue
            x, y = frame.point_x(index, count), frame.y(scale, value)
            commands.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            pen_down = True
            tip = f"{item.name} · {x_labels[index]}: {_number(value)}{_unit(y_unit)}"
            points.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{2.5 if count > 40 else 3.5}" fill="{_attr(item.color)}">'
                f"<title>{_text(tip)}</title></circle>"
            )
        parts.append(
            f'<path class="series" d="{" ".join(commands)}" fill="none" stroke="{_attr(item.color)}" '
            f'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
        )
        parts.extend(points)
    svg = _svg(width, height, _aria(title, "line chart", series), parts)
    return _figure(svg, title, _data_table(series, x_labels, x_links, y_unit=y_unit, title=title, x_name=x_name))


def bar_chart(
    series: Sequence[Series],
    *,
    x_labels: Sequence[str],
    y_unit: str = "",
    width: int = 720,
    height: int = 240,
    title: str = "",
    x_name: str = "",
    x_links: Sequence[str] | None = None,
) -> SafeString:
    """Bars side by side: one `<rect class="bar">` per non-empty value."""
    series = _colored(series)
    if _is_empty(series, x_labels):
        return _empty(width, height, title)
    frame = _Frame(width, height, title, series)
    values = [v for s in series for v in s.values if v is not None]
    scale = _Scale(min(values), max(values))
    count = len(x_labels)
    band = frame.plot_width / count
    bar = max(1.0, band * 0.75 / len(series))
    parts = [*frame.header(), *frame.y_axis(scale, y_unit), *frame.x_axis(x_labels, centered=True)]
    for index, label in enumerate(x_labels):
        start = frame.left + index * band + (band - bar * len(series)) / 2
        for position, item in enumerate(series):
            value = _value_at(item, index)
            if value is None:
                continue
            top, bottom = sorted((frame.y(scale, value), frame.y(scale, 0)))
            tip = f"{item.name} · {label}: {_number(value)}{_unit(y_unit)}"
            parts.append(_rect(start + position * bar, top, bar, bottom - top, item.color, tip))
    svg = _svg(width, height, _aria(title, "bar chart", series), parts)
    return _figure(svg, title, _data_table(series, x_labels, x_links, y_unit=y_unit, title=title, x_name=x_name))


def stacked_bar_chart(
    series: Sequence[Series],
    *,
    x_labels: Sequence[str],
    y_unit: str = "",
    width: int = 720,
    height: int = 240,
    title: str = "",
    x_name: str = "",
    x_links: Sequence[str] | None = None,
) -> SafeString:
    """Bars stacked in series order, bottom up: one `<rect class="bar">` per positive value."""
    series = _colored(series)
    if _is_empty(series, x_labels):
        return _empty(width, height, title)
    frame = _Frame(width, height, title, series)
    count = len(x_labels)
    totals = [
        sum(max(0.0, _value_at(item, index) or 0.0) for item in series) for index in range(count)
    ]
    scale = _Scale(0.0, max(totals))
    band = frame.plot_width / count
    bar = max(1.0, band * 0.75)
    parts = [*frame.header(), *frame.y_axis(scale, y_unit), *frame.x_axis(x_labels, centered=True)]
    for index, label in enumerate(x_labels):
        stacked = 0.0
        for item in series:
            value = _value_at(item, index)
            if not value or value <= 0:
                continue
            top, bottom = frame.y(scale, stacked + value), frame.y(scale, stacked)
            stacked += value
            tip = f"{label} · {item.name}: {_number(value)}{_unit(y_unit)} (of {_number(totals[index])})"
            parts.append(_rect(frame.left + index * band + (band - bar) / 2, top, bar, bottom - top, item.color, tip))
    svg = _svg(width, height, _aria(title, "stacked bar chart", series), parts)
    table = _data_table(series, x_labels, x_links, y_unit=y_unit, title=title, x_name=x_name, totals=totals)
    return _figure(svg, title, table)


# --- layout ----------------------------------------------------------------------------------------------------


class _Scale:
    """A y range from 0 (or the lowest negative value) to a round number above the highest, with ~5 ticks."""

    def __init__(self, low: float, high: float, ticks: int = 5):
        low, high = min(0.0, low), max(0.0, high)
        if high == low:
            high = low + 1.0
        step = _nice_step((high - low) / ticks)
        self.low = math.floor(low / step) * step
        self.high = math.ceil(high / step) * step
        self.ticks = [self.low + i * step for i in range(round((self.high - self.low) / step) + 1)]


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


class _Frame:
    """Where the title, the legend and the plot area go."""

    def __init__(self, width: int, height: int, title: str, series: Sequence[Series]):
        self.width, self.height, self.title = width, height, title
        self.left, self.right = 56.0, width - 12.0
        self.legend_rows = _legend_rows(series, width - 68)
        self.top = (22.0 if title else 8.0) + 16.0 * len(self.legend_rows) + 8.0
        self.bottom = height - 26.0
        self.series = series

    @property
    def plot_width(self) -> float:
        return self.right - self.left

    def y(self, scale: _Scale, value: float) -> float:
        return self.bottom - (value - scale.low) / (scale.high - scale.low) * (self.bottom - self.top)

    def point_x(self, index: int, count: int) -> float:
        if count == 1:
            return self.left + self.plot_width / 2
        inset = 8.0
        return self.left + inset + index * (self.plot_width - 2 * inset) / (count - 1)

    def header(self) -> list[str]:
        parts = []
        if self.title:
            parts.append(
                f'<text x="{self.left:.0f}" y="15" font-size="13" font-weight="600" fill="#1d2330" {FONT}>'
                f"{_text(self.title)}</text>"
            )
        y = (22.0 if self.title else 8.0) + 4.0
        for row in self.legend_rows:
            x = self.left
            for item, label, item_width in row:
                parts.append(
                    f'<rect class="swatch" x="{x:.1f}" y="{y:.1f}" width="10" height="10" rx="2" '
                    f'fill="{_attr(item.color)}"/>'
                    f'<text x="{x + 14:.1f}" y="{y + 9:.1f}" font-size="11" fill="{TEXT_COLOR}" {FONT}>'
                    f"{_text(label)}</text>"
                )
                x += item_width
            y += 16.0
        return parts

    def y_axis(self, scale: _Scale, unit: str) -> list[str]:
        parts = []
        for tick in scale.ticks:
            y = self.y(scale, tick)
            parts.append(
                f'<line x1="{self.left:.1f}" x2="{self.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{GRID_COLOR if tick else AXIS_COLOR}" stroke-width="1"/>'
                f'<text x="{self.left - 6:.1f}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                f'fill="{TEXT_COLOR}" {FONT}>{_text(_tick(tick) + _unit(unit, short=True))}</text>'
            )
        parts.append(
            f'<line x1="{self.left:.1f}" x2="{self.left:.1f}" y1="{self.top:.1f}" y2="{self.bottom:.1f}" '
            f'stroke="{AXIS_COLOR}" stroke-width="1"/>'
        )
        return parts

    def x_axis(self, labels: Sequence[str], *, centered: bool) -> list[str]:
        count = len(labels)
        stride = max(1, math.ceil(count / MAX_X_LABELS))
        band = self.plot_width / count
        parts = []
        for index in range(0, count, stride):
            x = self.left + (index + 0.5) * band if centered else self.point_x(index, count)
            parts.append(
                f'<text x="{x:.1f}" y="{self.bottom + 15:.1f}" font-size="10" text-anchor="middle" '
                f'fill="{TEXT_COLOR}" {FONT}>{_text(_short(labels[index]))}</text>'
            )
        return parts


def _legend_rows(series: Sequence[Series], available: float) -> list[list[tuple[Series, str, float]]]:
    rows: list[list[tuple[Series, str, float]]] = [[]]
    used = 0.0
    for item in series:
        label = _short(item.name, 32)
        item_width = 26.0 + 6.2 * len(label)
        if rows[-1] and used + item_width > available:
            rows.append([])
            used = 0.0
        rows[-1].append((item, label, item_width))
        used += item_width
    return rows if rows[0] else []


# --- pieces ----------------------------------------------------------------------------------------------------


def _figure(svg: str, title: str, table: str = "") -> SafeString:
    # The one place the markup is marked safe: every text and attribute in it was escaped by _text/_attr.
    return mark_safe(  # noqa: S308 - built from escaped parts only
        f'<figure class="chart-figure"><div class="chart-scroll" tabindex="0" role="region" '
        f'aria-label="{_attr(f"Chart: {title}" if title else "Chart")}">{svg}</div>{table}</figure>'
    )


def _svg(width: int, height: int, label: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{_attr(label)}" '
        f'viewBox="0 0 {int(width)} {int(height)}" width="{int(width)}" height="{int(height)}" '
        f'preserveAspectRatio="xMinYMin meet" style="min-width: {int(width * MIN_SCALE)}px">'
        + "".join(parts)
        + "</svg>"
    )


def _data_table(
    series: Sequence[Series],
    x_labels: Sequence[str],
    x_links: Sequence[str] | None,
    *,
    y_unit: str,
    title: str,
    x_name: str,
    totals: Sequence[float] | None = None,
) -> str:
    """The chart's values as a table in a "Show the data" disclosure: one row per x label, one column per
    series (and the total of a stacked chart), the x label linked when the chart has links."""

    def header(name: str) -> str:
        named = name if not y_unit or name.endswith(y_unit) else f"{name} ({y_unit.strip()})"
        return f'<th scope="col" class="num">{_text(named)}</th>'

    head = "".join(header(item.name) for item in series) + (header("Total") if totals is not None else "")
    rows = []
    for index, label in enumerate(x_labels):
        link = x_links[index] if x_links and index < len(x_links) else ""
        name = f'<a href="{_attr(link)}">{_text(label)}</a>' if link else _text(label)
        cells = "".join(f'<td class="num">{_cell(_value_at(item, index))}</td>' for item in series)
        if totals is not None:
            cells += f'<td class="num">{_cell(totals[index])}</td>'
        rows.append(f'<tr><th scope="row">{name}</th>{cells}</tr>')
    caption, label = _text(title or "Chart data"), _attr(title or "Chart data")
    return (
        f'<details class="chart-data"><summary>Show the data<span class="visually-hidden">: {caption}</span>'
        f'</summary><div class="table-scroll" tabindex="0" role="region" aria-label="Data: {label}">'
        f'<table><caption>{caption}</caption><thead><tr><th scope="col">{_text(x_name or "Label")}</th>{head}</tr>'
        f'</thead><tbody>{"".join(rows)}</tbody></table></div></details>'
    )


def _cell(value: float | None) -> str:
    return "—" if value is None else _number(value)


def _empty(width: int, height: int, title: str) -> SafeString:
    parts = []
    if title:
        parts.append(
            f'<text x="12" y="15" font-size="13" font-weight="600" fill="#1d2330" {FONT}>{_text(title)}</text>'
        )
    parts.append(
        f'<text class="no-data" x="{width / 2:.0f}" y="{height / 2:.0f}" font-size="13" text-anchor="middle" '
        f'fill="{TEXT_COLOR}" {FONT}>No data</text>'
    )
    return _figure(_svg(width, height, f"{title}: no data" if title else "No data", parts), title)


def _rect(x: float, y: float, width: float, height: float, color: str, tip: str) -> str:
    return (
        f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{max(height, 0.5):.1f}" '
        f'fill="{_attr(color)}"><title>{_text(tip)}</title></rect>'
    )


def _colored(series: Sequence[Series]) -> list[Series]:
    result = []
    for index, item in enumerate(series):
        color = item.color if item.color and _COLOR.fullmatch(item.color) else PALETTE[index % len(PALETTE)]
        result.append(Series(str(item.name), [_finite(v) for v in item.values], color))
    return result


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _is_empty(series: Sequence[Series], x_labels: Sequence[str]) -> bool:
    return not series or not x_labels or all(v is None for s in series for v in s.values[: len(x_labels)])


def _value_at(item: Series, index: int) -> float | None:
    return item.values[index] if index < len(item.values) else None


def _aria(title: str, kind: str, series: Sequence[Series]) -> str:
    names = ", ".join(item.name for item in series[:12])
    return f"{title} ({kind}: {names})" if title else f"{kind}: {names}"


def _text(value: str) -> str:
    return escape(str(value), quote=False)


def _attr(value: str) -> str:
    return escape(str(value), quote=True)


def _short(value: str, limit: int = MAX_LABEL_CHARS) -> str:
    value = str(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _unit(unit: str, *, short: bool = False) -> str:
    if not unit:
        return ""
    if unit.startswith(("/", "%")):
        return unit
    return "" if short and len(unit) > 3 else f" {unit}"


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{value:,.0f}"
    if abs(value) < 10:
        return f"{value:,.2f}"
    return f"{value:,.1f}"


def _tick(value: float) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"
