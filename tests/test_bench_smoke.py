"""The benchmarks still run: each one end to end with tiny parameters, and ``python -m bench``.

Nothing here looks at a timing: CI machines time nothing reliably. Only the shape of the
results and the outcomes that do not depend on speed (every job delivered, no 429) count.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bench
import bench.__main__ as runner
from bench import ack, budget, polling, saturation, scale, transcode
from bench.common import percentile, summarize

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["ack", "polling", "saturation", "scale", "budget", "transcode"]


def test_python_m_bench_help_lists_every_benchmark() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert f"python -m bench.{name}" in result.stdout


def test_runner_knows_every_benchmark_module() -> None:
    modules = {
        info.name for info in pkgutil.iter_modules(bench.__path__) if not info.name.startswith("_")
    }

    assert list(runner.BENCHMARKS) == NAMES
    assert modules - {"common"} == set(NAMES)
    assert all(callable(runner.load(name)) for name in NAMES)


def test_runner_plans_full_quick_and_named_runs() -> None:
    assert runner.plan([]) == [
        ("ack", ["--rounds", "5"]),
        ("polling", []),
        ("saturation", []),
        ("scale", []),
        ("budget", []),
        ("transcode", []),
    ]
    assert runner.plan(["--quick"]) == [(name, ["--quick"]) for name in NAMES]
    assert runner.plan(["scale", "ack", "--quick"]) == [
        ("scale", ["--quick"]),
        ("ack", ["--quick"]),
    ]
    with pytest.raises(SystemExit):
        runner.plan(["nope"])


def test_runner_runs_the_rest_and_fails_when_one_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, list[str], list[str]]] = []

    def fake_load(name: str):
        def fake_main(argv: list[str]) -> None:
            calls.append((name, argv, sys.argv[1:]))
            if name == "polling":
                raise RuntimeError("boom")

        return fake_main

    monkeypatch.setattr(runner, "load", fake_load)

    assert runner.main(["--quick"]) == 1
    assert runner.main(["ack"]) == 0

    assert [name for name, _, _ in calls] == [*NAMES, "ack"]
    # write_results() records each benchmark's own command from sys.argv.
    assert calls[-1] == ("ack", ["--rounds", "5"], ["--rounds", "5"])
    assert "failed: polling" in capsys.readouterr().err


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
        expected=0.6,
        prior=1.0,
        learn=2,
        jobs=3,
        spacing=0.05,
        fixed=(0.1,),
        servers=2,
        parallel=1,
    )

    figures = await polling.run(options, tmp_path)

    pollers = figures["pollers"]
    assert isinstance(pollers, list)
    assert [row["poller"] for row in pollers] == ["learned", "fixed-0.1s"]
    assert all(row["jobs"] == 3 and row["gets_per_job"] >= 1 for row in pollers)


async def test_polling_cold_compares_cold_and_warm_learned_pollers(tmp_path: Path) -> None:
    options = polling.PollingOptions(
        expected=0.6,
        prior=1.0,
        learn=2,
        jobs=3,
        spacing=0.05,
        fixed=(),
        servers=2,
        cold=True,
        cold_jobs=2,
        cold_runs=2,
        parallel=1,
    )

    figures = await polling.run(options, tmp_path)

    pollers = figures["pollers"]
    assert isinstance(pollers, list)
    # Two new bots of two jobs each per prior, pooled: the right prior, then the one given.
    assert [(row["poller"], row["jobs"]) for row in pollers] == [
        ("learned-cold", 4),
        ("learned-cold-prior-1s", 4),
        ("learned", 3),
    ]
    runs = figures["cold_runs"]
    assert isinstance(runs, dict)
    assert {name: [row["jobs"] for row in rows] for name, rows in runs.items()} == {
        "learned-cold": [2, 2],
        "learned-cold-prior-1s": [2, 2],
    }
    comparisons = figures["cold_vs_warm"]
    assert isinstance(comparisons, dict)
    assert comparisons["learned-cold"]["prior"] == 0.6
    assert comparisons["learned-cold"]["cold_ratio"] == pollers[0]["ratio"]
    assert comparisons["learned-cold-prior-1s"]["warm_ratio"] == pollers[2]["ratio"]
    # The planner alone, replayed on many seeds: what such new bots average to.
    assert comparisons["learned-cold"]["replay"]["jobs"] == 2 * options.replay_seeds
    target = figures["target"]
    assert isinstance(target, dict)
    assert {"learned-cold_ratio_at_most_0.9", "learned-cold-prior-1s_ratio_at_most_0.9"} <= set(
        target
    )


async def test_cold_bots_run_in_processes_of_their_own(tmp_path: Path) -> None:
    options = polling.PollingOptions(
        expected=0.6, prior=0.6, spacing=0.05, fixed=(), servers=2, cold_jobs=2
    )
    variants = [
        polling.Variant(None, options, tmp_path / f"cold-{seed}", cold=True, seed=seed)
        for seed in (1, 2)
    ]

    results = await polling.run_all(variants, parallel=2)

    assert [(row.poller, row.jobs) for row in results] == [("learned-cold", 2)] * 2


def test_polling_cold_option_parses() -> None:
    options, quick = polling.parse_options(["--cold", "--cold-jobs", "7"])

    assert (options.cold, options.cold_jobs, options.fixed, quick) == (True, 7, (), False)
    assert (options.cold_runs, options.parallel, options.cold_priors) == (8, 4, (60.0, 120.0))
    assert polling.parse_options([])[0].fixed == polling.PollingOptions().fixed


async def test_budget_measures_in_process_and_sqlite(tmp_path: Path) -> None:
    options = budget.BudgetOptions(requests=20, warmup=2, postgres=None)

    figures = await budget.run(options, tmp_path)

    rows = figures["budgets"]
    assert isinstance(rows, list)
    assert [(row["budget"], row["n"]) for row in rows] == [
        ("in-process", 20),
        ("shared-sqlite", 20),
    ]
    assert all(0 < row["p50_us"] <= row["p99_us"] for row in rows)


@pytest.mark.postgres
async def test_budget_measures_postgresql_on_a_fresh_database(tmp_path: Path) -> None:
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    options = budget.BudgetOptions(requests=20, warmup=2, postgres=admin_url)

    figures = await budget.run(options, tmp_path)

    rows = figures["budgets"]
    assert isinstance(rows, list)
    assert [row["budget"] for row in rows] == ["in-process", "shared-sqlite", "shared-postgresql"]
    assert rows[-1]["n"] == 20


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


async def test_transcode_shrinks_a_clip_to_fit_and_measures_it(tmp_path: Path) -> None:
    options = transcode.TranscodeOptions(seconds=2, width=320, height=240, max_bytes=None)

    figures = await transcode.run(options, tmp_path)

    assert figures["outcome"] == "fitted"
    output = figures["output"]
    quality = figures["quality"]
    assert isinstance(output, dict)
    assert isinstance(quality, dict)
    assert output["bytes"] <= figures["limit_bytes"]
    assert 0 < quality["ssim_all"] <= 1


# --- several processes on one PostgreSQL database (skipped without TEST_DATABASE_URL) ------------

needs_postgres = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set"
)


@needs_postgres
@pytest.mark.postgres
async def test_saturation_compares_one_and_two_processes_on_postgres(tmp_path: Path) -> None:
    options = saturation.SaturationOptions(
        rate_limit=600, jobs=8, arrivals=1200, expected=0.5, servers=2
    )

    figures = await saturation.compare_processes(
        options, tmp_path, admin_url=os.environ["TEST_DATABASE_URL"], processes=2
    )

    for label, processes in (("one_process", 1), ("several_processes", 2)):
        part = figures[label]
        assert isinstance(part, dict)
        assert part["processes"] == processes
        assert part["delivered"] == 8
        assert part["answers_429"] == 0
        assert part["posts"] == 8


@needs_postgres
@pytest.mark.postgres
async def test_scale_two_pollers_never_poll_a_job_twice_in_an_interval() -> None:
    options = scale.ScaleOptions(pending=40, small=10, due=3, delivered=5, video_mb=(1,))

    figures = await scale.run_processes(
        options, admin_url=os.environ["TEST_DATABASE_URL"], processes=2, contended=12
    )

    ticks = figures["ticks"]
    assert isinstance(ticks, list)
    assert [(row["pending"], row["due"]) for row in ticks] == [(10, 3), (40, 3), (40, 12)]
    for row in ticks:
        assert row["most_requests_for_one_job_in_an_interval"] == 1
        assert row["jobs_polled_twice_in_an_interval"] == 0
        # The benchmark's key never binds, so every due job is polled in every interval.
        assert row["jobs_not_polled_in_an_interval"] == 0
        assert sum(row["claimed_per_poller"]) == row["due"] * row["intervals"]


def test_processes_options_parse() -> None:
    args = saturation.parse_args(["--processes", "2", "--database-url", "postgresql://x/y"])
    assert (args.processes, args.database_url) == (2, "postgresql://x/y")
    assert saturation.parse_options([]) == (saturation.SaturationOptions(), False)
    assert scale.parse_args(["--processes", "2"]).processes == 2
