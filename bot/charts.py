"""The ``/budget usage`` chart: this period's spend as a PNG, plain data in, bytes out.

Two panels share the day axis. The upper one answers "how much of the budget is gone": the
spend so far (cumulative, a filled line) against the budget (a dashed line). The lower one
answers "who spent it, and when": spend per day as bars stacked by member, the largest
spender at the bottom and "others" on top in grey. A daily bar and a period budget differ by
an order of magnitude, so one shared credits axis would flatten the bars; each panel has its
own credits axis instead.

Readable on a phone, whose chat shows the picture about 400 px wide: 1200 x 1000 px with text
of 33 px and more (11 px or more in that preview, full size when opened), the colour-blind-safe
Okabe-Ito colours with white gaps between stacked parts, at most eight day labels, whole
credits on the axes, and the legend under the bars where it covers none of them. The numbers
behind the picture, for the screen-reader text, come from ``usage_summary``; all visible words
come from the caller's ``ChartLabels``.

matplotlib is imported only when a chart is drawn, and only its object API with the Agg
canvas: no pyplot, no GUI backend, no global figure state.
"""

from __future__ import annotations

import asyncio
import functools
import io
import itertools
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.font_manager import FontProperties

# 8 x 6.667 in at 150 dpi: 1200 x 1000 px; a point is 150/72 ≈ 2.1 px.
_FIGURE_INCHES = (8.0, 1000 / 150)
_DPI = 150
_TITLE_POINTS = 19
_TEXT_POINTS = 16  # 33 px
# Okabe-Ito, most distinct first; vermillion is kept for the budget line, and yellow (faint
# on white) comes last. Beyond these, two dark colours from Paul Tol's palette.
_MEMBER_COLOURS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#332288",
    "#882255",
)
_OTHERS_COLOUR = "#A0A0A0"
_BUDGET_COLOUR = "#D55E00"
_SPENT_COLOUR = "#1A1A1A"
_GRID_COLOUR = "#D9D9D9"
_TEXT_COLOUR = "#1A1A1A"
_MISSING_GLYPH = "\u25a1"  # WHITE SQUARE, which the font has
# Few enough day labels to stay apart at 27 px; steps that read as calendar rhythm.
_MAX_DAY_LABELS = 8
_DAY_LABEL_STEPS = (1, 2, 3, 5, 7, 14, 28)
# A one-day period still gets bars of a sensible width: the axis spans at least a week.
_MIN_DAY_SLOTS = 7
_MAX_CREDIT_TICKS = 5
_LEGEND_COLUMNS = 3
_MAX_LABEL_CHARS = 18

# matplotlib promises no thread safety; charts are rare, so they are drawn one at a time.
_RENDER_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ChartLabels:
    """Every word and number format on the chart, in the reader's language."""

    title: str
    credits_axis: str  # y-axis label of both panels, e.g. "Credits"
    per_day: str  # heading of the bar panel, e.g. "Spent per day"
    spent_so_far: str
    budget: str
    format_day: Callable[[date], str] = date.isoformat
    format_credits: Callable[[int], str] = str


@dataclass(frozen=True, slots=True)
class MemberSeries:
    """One stack layer: a member (or everyone folded into "others") and credits per day."""

    label: str
    credits: tuple[int, ...]  # aligned with ``UsageChart.days``
    is_others: bool = False

    @property
    def total(self) -> int:
        return sum(self.credits)


@dataclass(frozen=True, slots=True)
class UsageChart:
    """What the chart shows: consecutive days, oldest first, and one series per stack layer.

    ``series`` is in stack order, largest total first and "others" last. ``spent_before`` is
    spend in this period before the first day shown (a long period is cut to its recent days);
    it counts towards the spend so far. ``budget`` None means unlimited: no budget line.
    """

    days: tuple[date, ...]
    series: tuple[MemberSeries, ...]
    budget: int | None
    labels: ChartLabels
    spent_before: int = 0

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("a usage chart needs at least one day")
        steps = itertools.pairwise(self.days)
        if any(later - earlier != timedelta(days=1) for earlier, later in steps):
            raise ValueError("the days of a usage chart must be consecutive, oldest first")
        for layer in self.series:
            if len(layer.credits) != len(self.days):
                raise ValueError(f"series {layer.label!r} does not have one value per day")
            if any(amount < 0 for amount in layer.credits):
                raise ValueError(f"series {layer.label!r} has negative spend")
        if self.spent_before < 0:
            raise ValueError("spend before the first day can't be negative")

    def spent_per_day(self) -> list[int]:
        return [sum(day) for day in zip(*(layer.credits for layer in self.series), strict=True)]

    def spent_so_far(self) -> list[int]:
        """The cumulative spend at the end of each day, including ``spent_before``."""
        running = self.spent_before
        cumulative = []
        for amount in self.spent_per_day() or [0] * len(self.days):
            running += amount
            cumulative.append(running)
        return cumulative


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """The chart's numbers, for the sentences a screen reader reads instead of the picture."""

    total: int  # spend so far this period, ``spent_before`` included
    budget: int | None
    remaining: int | None  # None when unlimited; never below zero
    members: tuple[tuple[str, int], ...]  # (label, credits) per series, in chart order
    days: tuple[tuple[date, int], ...]  # (day, credits) for every day shown
    busiest_day: tuple[date, int] | None  # None when no day has spend


def named_members(spend: Mapping[tuple[int, date], int], *, top: int = 5) -> list[int]:
    """The members who get their own series, largest total first; the rest become "others".

    Folding a single member into "others" would hide a name to save nothing, so with
    ``top + 1`` spenders all of them are named.
    """
    totals: defaultdict[int, int] = defaultdict(int)
    for (member_id, _day), amount in spend.items():
        totals[member_id] += amount
    # Ties break on the id so the order, hence the colours, are stable between calls.
    ranked = sorted(
        (member_id for member_id, total in totals.items() if total > 0),
        key=lambda member_id: (-totals[member_id], member_id),
    )
    return ranked if len(ranked) <= top + 1 else ranked[:top]


def usage_chart(
    spend: Mapping[tuple[int, date], int],
    *,
    period_start: date,
    today: date,
    names: Mapping[int, str],
    others_label: str,
    budget: int | None,
    labels: ChartLabels,
    top: int = 5,
    max_days: int = 31,
) -> UsageChart | None:
    """Build the chart from credits per (member id, day); None when nothing was spent.

    Days run from ``period_start`` to ``today``, zero-spend days included; a longer period
    (a budget that never resets starts in 1970) shows its last ``max_days`` days and carries
    earlier spend in ``spent_before``. Entries outside the period are ignored; negative spend
    is refused (ValueError). Members without a name in ``names`` are labelled by their id.
    """
    if top < 1 or max_days < 1:
        raise ValueError("top and max_days must be at least 1")
    first_day = max(period_start, today - timedelta(days=max_days - 1))
    in_period = {
        (member_id, day): amount
        for (member_id, day), amount in spend.items()
        if period_start <= day <= today and amount
    }
    if not any(in_period.values()):
        return None
    days = tuple(
        first_day + timedelta(days=offset) for offset in range((today - first_day).days + 1)
    )
    index_of = {day: index for index, day in enumerate(days)}
    named = named_members(in_period, top=top)
    named_set = set(named)
    per_member = {member_id: [0] * len(days) for member_id in named}
    others = [0] * len(days)
    spent_before = 0
    for (member_id, day), amount in in_period.items():
        if day < first_day:
            spent_before += amount
        elif member_id in named_set:
            per_member[member_id][index_of[day]] += amount
        else:
            others[index_of[day]] += amount
    # A member whose spend all lies before the days shown would be an empty layer.
    series = [
        MemberSeries(label=names.get(member_id, str(member_id)), credits=tuple(per_day))
        for member_id, per_day in per_member.items()
        if any(per_day)
    ]
    series.sort(key=lambda layer: -layer.total)  # stable: ties keep named_members' order
    if any(others):
        series.append(MemberSeries(label=others_label, credits=tuple(others), is_others=True))
    return UsageChart(
        days=days,
        series=tuple(series),
        budget=budget,
        labels=labels,
        spent_before=spent_before,
    )


def usage_summary(chart: UsageChart) -> UsageSummary:
    per_day = chart.spent_per_day() or [0] * len(chart.days)
    total = chart.spent_before + sum(per_day)
    busiest = max(zip(chart.days, per_day, strict=True), key=lambda entry: entry[1])
    return UsageSummary(
        total=total,
        budget=chart.budget,
        remaining=None if chart.budget is None else max(chart.budget - total, 0),
        members=tuple((layer.label, layer.total) for layer in chart.series),
        days=tuple(zip(chart.days, per_day, strict=True)),
        busiest_day=busiest if busiest[1] > 0 else None,
    )


async def render_usage_chart_async(chart: UsageChart) -> bytes:
    """``render_usage_chart`` in a worker thread, so the event loop keeps running."""
    return await asyncio.to_thread(render_usage_chart, chart)


def render_usage_chart(chart: UsageChart) -> bytes:
    """The chart as PNG bytes. CPU-bound (a few hundred ms): call it off the event loop."""
    with _RENDER_LOCK:
        return _render(chart)


def _render(chart: UsageChart) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_FIGURE_INCHES, dpi=_DPI, layout="constrained", facecolor="white")
    FigureCanvasAgg(figure)  # attaches itself; savefig then draws with Agg, never a GUI
    try:
        spent_axes, daily_axes = figure.subplots(2, 1, sharex=True, height_ratios=(2, 3))
        figure.suptitle(
            _plain(chart.labels.title),
            fontproperties=_font(_TITLE_POINTS, bold=True),
            color=_TEXT_COLOUR,
        )
        _draw_spent_so_far(spent_axes, chart)
        _draw_daily_bars(daily_axes, chart)
        _draw_day_axis(daily_axes, chart)
        for axes in (spent_axes, daily_axes):
            _style(axes, chart.labels.credits_axis)
        spent_axes.tick_params(axis="x", length=0)  # the day labels belong to the bars
        figure.align_ylabels((spent_axes, daily_axes))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI, facecolor="white")
        return buffer.getvalue()
    finally:
        figure.clear()


def _draw_spent_so_far(axes: Axes, chart: UsageChart) -> None:
    labels = chart.labels
    # Straight segments between day boundaries: spend accrues through each day, so the line
    # is at each bar's centre halfway through that day's spend.
    boundaries = [index - 0.5 for index in range(len(chart.days) + 1)]
    cumulative = [chart.spent_before, *chart.spent_so_far()]
    spent = cumulative[-1]
    axes.fill_between(boundaries, cumulative, color=_SPENT_COLOUR, alpha=0.12, linewidth=0)
    axes.plot(
        boundaries,
        cumulative,
        color=_SPENT_COLOUR,
        linewidth=3,
        solid_capstyle="round",
        label=_plain(f"{labels.spent_so_far}: {labels.format_credits(spent)}"),
    )
    highest = spent
    if chart.budget is not None:
        axes.axhline(
            chart.budget,
            color=_BUDGET_COLOUR,
            linewidth=3,
            linestyle=(0, (4, 2)),
            label=_plain(f"{labels.budget}: {labels.format_credits(chart.budget)}"),
        )
        highest = max(highest, chart.budget)
    _credit_ticks(axes, highest, labels.format_credits)
    # The key sits above the panel, where it can cover neither line.
    axes.legend(
        loc="lower left",
        bbox_to_anchor=(0, 1),
        ncols=2,
        frameon=False,
        borderaxespad=0.2,
        handlelength=2.2,
        columnspacing=1.5,
        prop=_font(_TEXT_POINTS),
        labelcolor=_TEXT_COLOUR,
    )


def _draw_daily_bars(axes: Axes, chart: UsageChart) -> None:
    positions = range(len(chart.days))
    bottoms = [0] * len(chart.days)
    named_colours = iter(_MEMBER_COLOURS * math.ceil(len(chart.series) / len(_MEMBER_COLOURS)))
    for layer in chart.series:
        axes.bar(
            positions,
            layer.credits,
            bottom=bottoms,
            width=0.8,
            color=_OTHERS_COLOUR if layer.is_others else next(named_colours),
            edgecolor="white",  # a gap between stacked members of similar colour
            linewidth=1.2,
            label=_plain(_printable(layer.label)),
        )
        bottoms = [below + amount for below, amount in zip(bottoms, layer.credits, strict=True)]
    _credit_ticks(axes, max(bottoms), chart.labels.format_credits)
    axes.set_title(
        _plain(chart.labels.per_day),
        loc="left",
        fontproperties=_font(_TEXT_POINTS),
        color=_TEXT_COLOUR,
    )
    if chart.series:
        # Under the day labels, in stack order read left to right, then down: matplotlib fills
        # a legend column by column, so it gets the entries in that order.
        handles, names = axes.get_legend_handles_labels()
        columns = min(_LEGEND_COLUMNS, len(handles))
        order = _row_major(len(handles), columns)
        axes.figure.legend(
            [handles[index] for index in order],
            [names[index] for index in order],
            loc="outside lower center",  # constrained layout makes room below the axes
            ncols=columns,
            frameon=False,
            handlelength=1.2,
            handleheight=1.2,
            columnspacing=1.4,
            prop=_font(_TEXT_POINTS),
            labelcolor=_TEXT_COLOUR,
        )


def _row_major(count: int, columns: int) -> list[int]:
    """The entry order that a column-filled grid of ``columns`` shows row by row."""
    rows = math.ceil(count / columns)
    return [
        row * columns + column
        for column in range(columns)
        for row in range(rows)
        if row * columns + column < count
    ]


def _draw_day_axis(axes: Axes, chart: UsageChart) -> None:
    count = len(chart.days)
    step = next(
        (step for step in _DAY_LABEL_STEPS if math.ceil(count / step) <= _MAX_DAY_LABELS),
        _DAY_LABEL_STEPS[-1],
    )
    # Counted back from today, so the newest day always has its label.
    labelled = sorted(range(count - 1, -1, -step))
    axes.set_xticks(
        labelled,
        [_plain(chart.labels.format_day(chart.days[index])) for index in labelled],
        fontproperties=_font(_TEXT_POINTS),
    )
    slots = max(count, _MIN_DAY_SLOTS)
    padding = (slots - count) / 2
    axes.set_xlim(-0.5 - padding, count - 0.5 + padding)


def _credit_ticks(axes: Axes, highest: int, format_credits: Callable[[int], str]) -> None:
    from matplotlib.ticker import MaxNLocator

    # Whole credits only, and at least a few of them when the largest value is tiny; a little
    # headroom so that the highest bar or line does not touch the frame.
    ceiling = max(highest, 4) * 1.06
    ticks = [
        int(tick)
        for tick in MaxNLocator(nbins=_MAX_CREDIT_TICKS, integer=True).tick_values(0, ceiling)
        if 0 <= tick <= ceiling
    ]
    axes.set_yticks(
        ticks,
        [_plain(format_credits(tick)) for tick in ticks],
        fontproperties=_font(_TEXT_POINTS),
    )
    axes.set_ylim(0, ceiling)


def _style(axes: Axes, credits_axis: str) -> None:
    axes.set_ylabel(_plain(credits_axis), fontproperties=_font(_TEXT_POINTS), color=_TEXT_COLOUR)
    axes.grid(axis="y", color=_GRID_COLOUR, linewidth=1)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.tick_params(colors=_TEXT_COLOUR, length=0, pad=6)
    axes.tick_params(axis="x", length=5)


@functools.cache
def _font_file(bold: bool) -> Path:
    # matplotlib's own copy of DejaVu Sans: the same glyphs on every host, umlauts included.
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


def _font(points: float, *, bold: bool = False) -> FontProperties:
    from matplotlib.font_manager import FontProperties

    return FontProperties(fname=_font_file(bold), size=points)


@functools.cache
def _font_characters() -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(str(_font_file(bold=False))).get_charmap())


def _printable(label: str) -> str:
    """A display name without the characters the font lacks (emoji, mostly), cut to length.

    A name made only of those shows a box per character instead: an empty label would tell
    no one apart, and the screen-reader text has the real name.
    """
    known = _font_characters()
    kept = " ".join("".join(char for char in label if ord(char) in known).split())
    kept = kept or "".join(char if ord(char) in known else _MISSING_GLYPH for char in label)
    # Three legend columns of 32-character names would not fit the width.
    if len(kept) > _MAX_LABEL_CHARS:
        kept = kept[: _MAX_LABEL_CHARS - 1].rstrip() + "\u2026"
    return kept


def _plain(text: str) -> str:
    # A "$" pair would otherwise be typeset as a formula: "$money$" is a name, not maths.
    return text.replace("$", r"\$")
