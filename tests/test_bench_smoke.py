"""The benchmarks still run: each one end to end with tiny parameters.

Nothing here looks at a timing: CI machines time nothing reliably. Only the shape of the
results and the outcomes that do not depend on speed (every job delivered, no 429) count.
"""

from __future__ import annotations

from pathlib import Path

from bench import ack, polling, saturation, scale
from bench.common import percentile, summarize


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert summarize([1.0, 2.0, 3.0])["max"] == 3.0


async def test_ack_measures_both_bots(tmp_path: Path) -> None:
    options = ack.AckOptions(commands=6, servers=2, members=2, rounds=1)

    figures = await ack.run(options, tmp_path)

    seconds = figures["seconds"]
    assert isinstance(seconds, dict)
    for phase in ("cold", "warm"):
        assert {kind: stats["n"] for kind, stats in seconds[phase].items()} == {
            "bare": 6,
            "imagine-bot": 6,
        }


async def test_polling_compares_learned_and_fixed_pollers(tmp_path: Path) -> None:
    options = polling.PollingOptions(
        expected=0.6, prior=1.0, learn=2, jobs=3, spacing=0.05, fixed=(0.1,), servers=2
    )

    figures = await polling.run(options, tmp_path)

    pollers = figures["pollers"]
    assert isinstance(pollers, list)
    assert [row["poller"] for row in pollers] == ["learned", "fixed-0.1s"]
    assert all(row["jobs"] == 3 and row["gets_per_job"] >= 1 for row in pollers)


async def test_saturation_delivers_every_job(tmp_path: Path) -> None:
    options = saturation.SaturationOptions(
        rate_limit=600, jobs=8, arrivals=1200, expected=0.5, servers=2
    )

    figures = await saturation.run(options, tmp_path)

    assert figures["delivered"] == 8
    assert figures["answers_429"] == 0


async def test_scale_measures_ticks_startup_and_deliveries(tmp_path: Path) -> None:
    options = scale.ScaleOptions(pending=40, small=10, due=2, delivered=5, video_mb=(1,))

    figures = await scale.run(options, tmp_path)

    ticks = figures["ticks"]
    deliveries = figures["deliveries"]
    assert isinstance(ticks, list)
    assert isinstance(deliveries, list)
    assert [row["pending"] for row in ticks] == [10, 40]
    assert deliveries[0]["uploaded_mib"] == 1.0
