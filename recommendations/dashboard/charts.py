"""The dashboard's charts, drawn on the server by matplotlib as inline SVG.

Each function takes what a selector returned and gives markup to place in the page: an `<svg>`
element (no XML prolog) whose ids are prefixed with the chart's name, so several charts share one
page without clashing ids, and whose data series carry stable ids (`<chart>-series-<n>`,
`<chart>-bar-<n>`) that tests and stylesheets can find. Text stays text (`svg.fonttype: none`),
labels are never read as mathtext (event types and item ids come from clients), and only the
object-oriented API is used (no pyplot state); rendering holds a lock because rcParams are global.

Drawing costs tens of milliseconds a chart, so each process keeps the last `CACHE_SIZE` charts by
a digest of what they show: a chart whose data did not change (the metrics chart until the next
training, every chart of a quiet shop) is not drawn again.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")  # never a GUI backend, whatever the environment says

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from matplotlib import dates as mdates
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from recommendations.dashboard.selectors import (
    CHART_METRICS,
    EventSeries,
    ItemCount,
    SolutionRow,
    TrendingItem,
)

__all__ = ["chart_cache_clear", "events_chart", "metrics_chart", "top_items_chart", "trending_items_chart"]

CACHE_SIZE = 32
_lock = threading.Lock()
_cache: OrderedDict[bytes, SafeString] = OrderedDict()
_RC = {
    "svg.fonttype": "none",  # <text> elements: small, searchable, selectable
    "text.parse_math": False,  # "$5 off" is a label, not TeX
    "path.simplify": False,  # a point per hour, even where the line is straight
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_IDS = re.compile(r'(\bid="|url\(#|href="#)')


def _svg(figure: Figure, name: str, label: str) -> SafeString:
    """The figure as an inline <svg>, ids prefixed with `name`, with an accessible label."""
    buffer = io.StringIO()
    FigureCanvasSVG(figure).print_svg(buffer, metadata={"Date": None})
    markup = _PROLOG.sub("", buffer.getvalue(), count=1)
    markup = _IDS.sub(lambda match: f"{match.group(1)}{name}-", markup)
    attributes = f'<svg class="recsite-chart" data-chart="{name}" role="img" aria-label="{escape(label)}"'
    return mark_safe(markup.replace("<svg", attributes, 1))  # matplotlib escapes the text it writes


def _render(name: str, label: str, draw: Any, size: tuple[float, float], data: object) -> SafeString:
    """Draw (or take from the cache) one chart; `data` is everything the chart shows (its repr is keyed)."""
    key = hashlib.blake2b(repr((name, label, size, data)).encode(), digest_size=16).digest()
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        # Fixed margins (set by `draw`), not a layout engine: constrained layout doubled the time.
        with matplotlib.rc_context(_RC):
            figure = Figure(figsize=size)
            draw(figure)
            markup = _svg(figure, name, label)
        _cache[key] = markup
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return markup


def chart_cache_clear() -> None:
    """Forget the drawn charts of this process."""
    with _lock:
        _cache.clear()


def _text_width(labels: Sequence[str], figure: Figure) -> float:
    """Rough width of the longest label as a fraction of the figure (9 pt DejaVu Sans: ~5.8 pt a char)."""
    longest = max((len(label) for label in labels), default=0)
    return longest * 5.8 / (figure.get_figwidth() * 72)


def _empty(axes: Any, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="#666")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.grid(False)


def events_chart(series: EventSeries) -> SafeString:
    """Events per hour, one line per event type, with each type's total in the legend."""

    def draw(figure: Figure) -> None:
        figure.subplots_adjust(left=0.06, right=0.99, top=0.86, bottom=0.12)
        axes = figure.add_subplot()
        if not series.total:
            _empty(axes, "No events in this window")
            return
        for index, (event_type, counts) in enumerate(series.counts.items()):
            (line,) = axes.plot(
                series.hours,
                counts,
                linewidth=1.2,
                label=f"{event_type} ({series.totals[event_type]:,})",
            )
            line.set_gid(f"series-{index}")
        axes.set_ylabel("events per hour")
        axes.set_ylim(bottom=0)
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
        axes.legend(
            loc="lower left", bbox_to_anchor=(0, 1), fontsize=8, frameon=False, ncols=len(series.counts)
        )

    return _render("events", "Events per hour by event type", draw, (10.0, 3.0), series)


def _bars(
    figure: Figure, labels: Sequence[str], values: Sequence[int], colour: str, xlabel: str, empty: str
) -> None:
    left = min(0.55, 0.05 + _text_width(labels, figure))
    figure.subplots_adjust(left=left, right=0.9, top=0.97, bottom=0.14)
    axes = figure.add_subplot()
    if not values:
        _empty(axes, empty)
        return
    positions = list(range(len(values)))
    bars = axes.barh(positions, values, color=colour)
    for index, bar in enumerate(bars):
        bar.set_gid(f"bar-{index}")
    axes.set_yticks(positions, labels=labels)
    axes.invert_yaxis()  # largest on top
    axes.bar_label(bars, labels=[f"{value:,}" for value in values], padding=3, fontsize=8)
    axes.set_xlabel(xlabel)
    axes.grid(axis="y", visible=False)


def top_items_chart(items: Sequence[ItemCount], days: int) -> SafeString:
    """Horizontal bars: the items with the most events in the window."""
    return _render(
        "top-items",
        f"Top items by events over {days} days",
        lambda figure: _bars(
            figure,
            [item.item_id for item in items],
            [item.events for item in items],
            "#417690",
            f"events in the last {days} days",
            "No item events in this window",
        ),
        (5.0, 3.2),
        (list(items), days),
    )


def trending_items_chart(items: Sequence[TrendingItem]) -> SafeString:
    """Horizontal bars: the increase of each trending item's events from the day before to the last day."""
    return _render(
        "trending-items",
        "Trending items: increase in events over the last day",
        lambda figure: _bars(
            figure,
            [item.item_id for item in items],
            [item.increase for item in items],
            "#c7792b",
            "more events in the last day than the day before",
            "No item grew in the last day",
        ),
        (5.0, 3.2),
        list(items),
    )


def metrics_chart(solutions: Sequence[SolutionRow]) -> SafeString:
    """Each solution's ACTIVE versions' offline metrics over time: one panel per metric, one line
    (with a marker per version) per solution."""
    with_metrics = [
        (solution, sorted((v for v in solution.active_versions if v.metrics), key=lambda v: v.created_at))
        for solution in solutions
    ]
    with_metrics = [(solution, versions) for solution, versions in with_metrics if versions]

    names = [solution.name for solution, _versions in with_metrics]
    times = [v.created_at for _solution, versions in with_metrics for v in versions]

    def draw(figure: Figure) -> None:
        right = max(0.6, 0.97 - _text_width(names, figure) - 0.03)
        figure.subplots_adjust(left=0.05, right=right, top=0.88, bottom=0.14, wspace=0.3)
        panels = figure.subplots(1, len(CHART_METRICS), sharex=True)
        if not with_metrics:
            for axes in panels:
                _empty(axes, "No trained version with metrics yet")
            return
        for axes, (metric, title) in zip(panels, CHART_METRICS, strict=True):
            axes.set_title(title, fontsize=9)
            for index, (solution, versions) in enumerate(with_metrics):
                points = [(v.created_at, v.metrics[metric]) for v in versions if metric in v.metrics]
                if not points:
                    continue
                (line,) = axes.plot(
                    [moment for moment, _value in points],
                    [value for _moment, value in points],
                    marker="o",
                    markersize=4,
                    label=solution.name,
                )
                line.set_gid(f"{metric}-series-{index}")
            axes.set_ylim(bottom=0)
            if max(times) - min(times) < timedelta(days=2):  # one training day: show the days around it
                middle = min(times) + (max(times) - min(times)) / 2
                axes.set_xlim(middle - timedelta(days=2), middle + timedelta(days=2))
            locator = mdates.AutoDateLocator(minticks=2, maxticks=4)
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        handles, labels = panels[0].get_legend_handles_labels()
        figure.legend(
            handles, labels, loc="upper left", bbox_to_anchor=(right + 0.01, 0.9), fontsize=8, frameon=False
        )

    return _render(
        "metrics", "Offline metrics of each solution's versions over time", draw, (11.0, 3.0), with_metrics
    )
