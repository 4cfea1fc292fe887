"""The /budget usage chart: building its data, and rendering it as a PNG."""

from __future__ import annotations

import asyncio
import io
import struct
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.charts import (
    ChartLabels,
    MemberSeries,
    UsageChart,
    named_members,
    render_usage_chart,
    render_usage_chart_async,
    usage_chart,
    usage_summary,
)

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MARCH_1 = date(2025, 3, 1)
LABELS = ChartLabels(
    title="Budget usage, March",
    credits_axis="Credits",
    per_day="Spent per day",
    spent_so_far="Spent so far",
    budget="Budget",
    format_day=lambda day: f"{day.day}.{day.month}.",
    format_credits=lambda amount: f"{amount:,}".replace(",", "."),
)


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    # The IHDR chunk comes first: length, type, then width and height as big-endian uint32.
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _chart(spend: dict[tuple[int, date], int], *, days: int, budget: int | None = 2000):
    chart = usage_chart(
        spend,
        period_start=MARCH_1,
        today=MARCH_1 + timedelta(days=days - 1),
        names={member_id: f"Member {member_id}" for member_id in range(1, 20)},
        others_label="Others",
        budget=budget,
        labels=LABELS,
    )
    assert chart is not None
    return chart


def _month_of_spend(members: int) -> dict[tuple[int, date], int]:
    return {
        (member_id, MARCH_1 + timedelta(days=offset)): (member_id * 7 + offset * 3) % 40
        for member_id in range(1, members + 1)
        for offset in range(31)
    }


# Building the chart's data


def test_no_spend_means_no_chart() -> None:
    common = {
        "period_start": MARCH_1,
        "today": MARCH_1 + timedelta(days=4),
        "names": {1: "Alex"},
        "others_label": "Others",
        "budget": 100,
        "labels": LABELS,
    }
    assert usage_chart({}, **common) is None
    assert usage_chart({(1, MARCH_1): 0}, **common) is None
    # Spend from the previous period is not this period's.
    assert usage_chart({(1, MARCH_1 - timedelta(days=1)): 50}, **common) is None


def test_every_day_of_the_period_so_far_is_shown_with_zero_spend_days() -> None:
    spend = {(1, MARCH_1): 10, (2, MARCH_1 + timedelta(days=3)): 5, (1, MARCH_1 + timedelta(3)): 1}
    chart = _chart(spend, days=5)
    assert chart.days == tuple(MARCH_1 + timedelta(days=offset) for offset in range(5))
    assert [(layer.label, layer.credits) for layer in chart.series] == [
        ("Member 1", (10, 0, 0, 1, 0)),
        ("Member 2", (0, 0, 0, 5, 0)),
    ]
    assert chart.spent_per_day() == [10, 0, 0, 6, 0]
    assert chart.spent_so_far() == [10, 10, 10, 16, 16]


def test_members_past_the_top_are_folded_into_others_last() -> None:
    spend = {(member_id, MARCH_1): member_id * 10 for member_id in range(1, 10)}
    chart = _chart(spend, days=1)
    assert [layer.label for layer in chart.series] == [
        "Member 9",
        "Member 8",
        "Member 7",
        "Member 6",
        "Member 5",
        "Others",
    ]
    assert chart.series[-1].is_others
    assert chart.series[-1].credits == (10 + 20 + 30 + 40,)


def test_a_single_member_past_the_top_keeps_their_name() -> None:
    spend = {(member_id, MARCH_1): member_id for member_id in range(1, 7)}
    assert named_members(spend, top=5) == [6, 5, 4, 3, 2, 1]
    chart = _chart(spend, days=1)
    assert not any(layer.is_others for layer in chart.series)
    assert len(chart.series) == 6


def test_ties_are_ordered_by_member_id_so_colours_are_stable() -> None:
    spend = {(3, MARCH_1): 5, (1, MARCH_1): 5, (2, MARCH_1): 9}
    assert named_members(spend) == [2, 1, 3]


def test_a_long_period_shows_its_recent_days_and_carries_the_rest() -> None:
    # A budget that never resets starts in 1970: the chart shows the last max_days days.
    today = date(2025, 3, 31)
    spend = {(1, date(2024, 1, 1)): 500, (2, date(2024, 6, 1)): 70, (1, today): 30}
    chart = usage_chart(
        spend,
        period_start=date(1970, 1, 1),
        today=today,
        names={1: "Alex", 2: "Bo"},
        others_label="Others",
        budget=1000,
        labels=LABELS,
        max_days=10,
    )
    assert chart is not None
    assert chart.days[0] == date(2025, 3, 22)
    assert len(chart.days) == 10
    assert chart.spent_before == 570
    # Bo only spent before the days shown: no empty layer for them.
    assert [layer.label for layer in chart.series] == ["Alex"]
    assert chart.spent_so_far()[-1] == 600
    assert usage_summary(chart).total == 600


def test_members_without_a_name_are_labelled_by_id() -> None:
    chart = usage_chart(
        {(42, MARCH_1): 3},
        period_start=MARCH_1,
        today=MARCH_1,
        names={},
        others_label="Others",
        budget=None,
        labels=LABELS,
    )
    assert chart is not None
    assert chart.series[0].label == "42"


def test_inconsistent_chart_data_is_refused() -> None:
    with pytest.raises(ValueError, match="one value per day"):
        UsageChart(
            days=(MARCH_1, MARCH_1 + timedelta(days=1)),
            series=(MemberSeries("Alex", (1,)),),
            budget=None,
            labels=LABELS,
        )
    with pytest.raises(ValueError, match="consecutive"):
        UsageChart(
            days=(MARCH_1, MARCH_1 + timedelta(days=2)), series=(), budget=None, labels=LABELS
        )
    with pytest.raises(ValueError, match="negative"):
        UsageChart(
            days=(MARCH_1,), series=(MemberSeries("Alex", (-1,)),), budget=None, labels=LABELS
        )
    with pytest.raises(ValueError, match="at least one day"):
        UsageChart(days=(), series=(), budget=None, labels=LABELS)


def test_summary_gives_the_numbers_for_the_screen_reader_text() -> None:
    spend = {(1, MARCH_1): 10, (2, MARCH_1 + timedelta(days=1)): 25, (1, MARCH_1 + timedelta(2)): 5}
    summary = usage_summary(_chart(spend, days=3, budget=30))
    assert summary.total == 40
    assert summary.budget == 30
    assert summary.remaining == 0  # overspent reads as nothing left, not a negative amount
    assert summary.members == (("Member 2", 25), ("Member 1", 15))
    assert summary.days == (
        (MARCH_1, 10),
        (MARCH_1 + timedelta(days=1), 25),
        (MARCH_1 + timedelta(days=2), 5),
    )
    assert summary.busiest_day == (MARCH_1 + timedelta(days=1), 25)
    assert usage_summary(_chart(spend, days=3, budget=None)).remaining is None


# Rendering


def test_renders_a_png_of_the_chosen_size() -> None:
    png = render_usage_chart(_chart(_month_of_spend(members=6), days=31))
    assert _png_size(png) == (1200, 1000)


def test_the_png_decodes_to_an_image() -> None:
    from matplotlib.image import imread

    png = render_usage_chart(_chart({(1, MARCH_1): 12}, days=1))
    pixels = imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (1000, 1200)
    # Not a blank canvas: the bars, lines and text put dark pixels on the white background.
    assert pixels[..., :3].min() < 0.2


@pytest.mark.parametrize(
    ("spend", "days", "budget"),
    [
        pytest.param({(1, MARCH_1): 12}, 1, 100, id="one day"),
        pytest.param(_month_of_spend(members=6), 31, 2000, id="a full month"),
        pytest.param(_month_of_spend(members=12), 31, 2000, id="many members"),
        pytest.param({(1, MARCH_1 + timedelta(days=4)): 3}, 9, None, id="unlimited, idle days"),
        pytest.param({(1, MARCH_1): 500}, 3, 0, id="a zero budget, overspent"),
    ],
)
def test_renders_every_shape_of_period(spend, days: int, budget: int | None) -> None:
    assert _png_size(render_usage_chart(_chart(spend, days=days, budget=budget))) == (1200, 1000)


def test_names_with_emoji_dollars_and_umlauts_render_cleanly(recwarn) -> None:
    chart = usage_chart(
        {(1, MARCH_1): 5, (2, MARCH_1): 4, (3, MARCH_1): 3, (4, MARCH_1): 2},
        period_start=MARCH_1,
        today=MARCH_1,
        names={1: "Bärbel 🔥", 2: "$money$", 3: "🎉🎉", 4: "x^2_$ and a very long name"},
        others_label="Andere",
        budget=10,
        labels=LABELS,
    )
    assert chart is not None
    assert render_usage_chart(chart).startswith(PNG_SIGNATURE)
    # A missing glyph or a label parsed as a formula would have warned or raised.
    assert [str(warning.message) for warning in recwarn] == []


def test_legend_labels_drop_missing_glyphs_and_stay_short() -> None:
    from bot.charts import _printable

    assert _printable("Bärbel 🔥") == "Bärbel"
    assert _printable("🎉 🎉") == "\u25a1 \u25a1"  # boxes rather than an empty label
    assert _printable("chris_the_maker_of_many_videos") == "chris_the_maker_o\u2026"


def test_renders_from_worker_threads_at_once() -> None:
    chart = _chart(_month_of_spend(members=6), days=31)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def render() -> None:
        try:
            results.append(render_usage_chart(chart))
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=render) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert len(results) == 3
    assert all(_png_size(png) == (1200, 1000) for png in results)


async def test_async_rendering_keeps_the_event_loop_running() -> None:
    chart = _chart(_month_of_spend(members=6), days=31)
    ticks = 0

    async def count_ticks() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    counter = asyncio.create_task(count_ticks())
    try:
        png = await render_usage_chart_async(chart)
    finally:
        counter.cancel()
    assert _png_size(png) == (1200, 1000)
    assert ticks > 0


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = "import bot.charts, sys; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
