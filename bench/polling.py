"""Polling efficiency: status requests per job and lateness, learned schedule vs fixed intervals.

Generation times are uniform on [0.5·E, 1.5·E] (the simulator, seeded, so every variant sees the
same durations). Each variant runs the whole bot end to end: a learning phase of ``--learn``
staggered jobs, then ``--jobs`` measured ones. For each measured job:

* status requests: ``GET /v1/status`` for its task, counted by the simulator;
* lateness: the simulator's completion moment → the video message posted at the stand-in, on
  one monotonic clock (so it includes fetching and posting the video).

The figure of merit is (GETs per job - 1) · mean lateness against the bound E[D - Dmin] / 2 that
a poller waiting Dmin and then polling at a fixed pace sits on (ratio 1.0).

With ``--cold`` the run compares the learned poller warm (the measurement above) with the same
poller cold: a new bot with no history at all, nothing but ``POLL_EXPECTED_SECONDS`` (the prior),
measured on its first ``--cold-jobs`` jobs with no learning phase. It does so twice: with the
prior set to the real expected duration (what an operator who knows it configures), and with
``--prior`` (by default the bot's default of 120 s, twice too long). One 30-job run is a noisy
figure (its ratio varies by 0.1 to 0.2 from seed to seed), so ``--cold-runs`` new bots per prior,
each with its own seed, are reported one by one and pooled. Every bot runs in a process of its
own, ``--parallel`` at a time (discord.py's loopback patch is global to a process). Results go
to ``bench/results/polling-cold.json`` (the fixed pollers are skipped unless ``--fixed`` is
given).

    python -m bench.polling [--expected 60] [--learn 60] [--jobs 60] [--quick]
    python -m bench.polling --cold [--cold-jobs 30] [--cold-runs 8] [--parallel 4] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.common import (
    Loopback,
    loopback,
    percentile,
    quiet_logging,
    status_requests_per_task,
    write_results,
)
from bot.schedule import PollSchedule
from bot.simulator import SimulatorConfig, first_durations
from tests.support.discord_standin import InteractionRecord
from tests.support.schedule_replay import replay_jobs

LEARNED = "learned"
COLD = "learned-cold"
REPLAY = "replay-cold"
# A poll is sent a few milliseconds after it is due (measured end to end: ~8 ms).
REPLAY_JITTER = 0.01


@dataclass(frozen=True)
class FixedIntervalPlanner:
    """The common way: a status request every ``interval`` seconds from submission.

    It keeps its pace whatever the rate budget (the benchmark's limit never binds).
    """

    interval: float
    expected_duration: float

    def first_poll(self) -> float:
        return self.interval

    def next_poll(self, elapsed: float, *, pressure: float = 1.0) -> float:
        return elapsed + self.interval

    def expected_requests(self, *, pressure: float = 1.0) -> float:
        return self.expected_duration / self.interval + 0.5


@dataclass(frozen=True)
class PollingOptions:
    expected: float = 60.0  # E: durations are uniform on [0.5 E, 1.5 E]
    prior: float = 120.0  # POLL_EXPECTED_SECONDS: what the bot assumes before it has learned
    learn: int = 60
    jobs: int = 60
    spacing: float = 1.0  # seconds between submissions
    fixed: tuple[float, ...] = (1.0, 6.0)
    rate_limit: int = 6000  # high enough for 1-second polling of every job in flight
    servers: int = 5
    seed: int = 20240601
    cold: bool = False  # also measure the learned poller cold: no history, no learning phase
    cold_jobs: int = 30
    # New bots per prior, each with its own seed: 30 jobs make one ratio noisy.
    cold_runs: int = 8
    parallel: int = 4  # bots run at once, each in a process of its own (1: one after another)
    # The planner alone replayed on this many seeds' durations: what the cold runs average to.
    replay_seeds: int = 100

    @property
    def cold_priors(self) -> tuple[float, ...]:
        """The right prior (the real expected duration), then ``prior`` if it differs."""
        return (self.expected,) if self.prior == self.expected else (self.expected, self.prior)

    @property
    def shortest_duration(self) -> float:
        return 0.5 * self.expected

    @property
    def wait_limit(self) -> float:
        """How long a phase may take at most before the run is declared stuck."""
        return 3 * self.expected + self.spacing * max(self.learn, self.jobs, self.cold_jobs) + 60


async def run_phase(world: Loopback, prefix: str, count: int, options: PollingOptions) -> list:
    """Submit ``count`` staggered /imagine and wait until every video is posted."""
    records: list[InteractionRecord] = []
    if count == 0:
        return records
    for index in range(count):
        records.append(await world.imagine(index, f"{prefix} {index}"))
        await asyncio.sleep(options.spacing)
    await world.standin.wait_for(
        lambda: all(world.posted_at(record) is not None for record in records),
        limit=options.wait_limit,
    )
    return records


@dataclass(frozen=True)
class PollerResult:
    poller: str
    jobs: int
    gets_per_job: float
    lateness_mean: float
    lateness_p95: float
    lateness_max: float
    bound: float  # E[D - Dmin] / 2 over the measured jobs' real durations
    learned_samples: int | None
    http_answers: dict[int, int]

    @classmethod
    def measured(
        cls,
        name: str,
        requests: list[int],
        lateness: list[float],
        above_minimum: list[float],
        *,
        learned_samples: int | None = None,
        http_answers: dict[int, int] | None = None,
    ) -> PollerResult:
        """One run's figures from each job's status requests, lateness and D - Dmin."""
        return cls(
            poller=name,
            jobs=len(requests),
            gets_per_job=sum(requests) / len(requests),
            lateness_mean=sum(lateness) / len(lateness),
            lateness_p95=percentile(lateness, 95),
            lateness_max=max(lateness),
            bound=sum(above_minimum) / len(above_minimum) / 2,
            learned_samples=learned_samples,
            http_answers=http_answers or {},
        )

    @classmethod
    def pooled(cls, name: str, parts: list[PollerResult]) -> PollerResult:
        """Several runs of equally many jobs as one: means over every job."""
        count = len(parts)
        return cls(
            poller=name,
            jobs=sum(part.jobs for part in parts),
            gets_per_job=sum(part.gets_per_job for part in parts) / count,
            lateness_mean=sum(part.lateness_mean for part in parts) / count,
            lateness_p95=max(part.lateness_p95 for part in parts),
            lateness_max=max(part.lateness_max for part in parts),
            bound=sum(part.bound for part in parts) / count,
            learned_samples=None,
            http_answers={},
        )

    @property
    def product(self) -> float:
        return (self.gets_per_job - 1) * self.lateness_mean

    @property
    def ratio(self) -> float:
        return self.product / self.bound

    def as_json(self) -> dict[str, object]:
        return asdict(self) | {"product": self.product, "ratio": self.ratio}


def simulator_config(options: PollingOptions, seed: int) -> SimulatorConfig:
    return SimulatorConfig(
        min_seconds=0.5 * options.expected,
        max_seconds=1.5 * options.expected,
        rate_limit_per_minute=options.rate_limit,
        seed=seed,
    )


def replay(options: PollingOptions, prior: float, *, cold: bool = True) -> PollerResult:
    """Bots replayed without Discord on ``replay_seeds`` seeds' durations, pooled.

    Cold: a new bot's first ``cold_jobs`` jobs. Warm: ``learn`` jobs run to the end, then
    ``jobs`` measured ones, as ``run_variant`` does. Replaying the end-to-end runs' own seeds
    lands within 0.04 of their pooled ratio (within 0.1 seed by seed, about the spread of
    repeated end-to-end runs of one seed).
    """
    runs: list[PollerResult] = []
    for seed in range(options.seed, options.seed + options.replay_seeds):
        if cold:
            learned_from: list[float] = []
            durations = first_durations(simulator_config(options, seed), options.cold_jobs)
        else:
            every = first_durations(simulator_config(options, seed), options.learn + options.jobs)
            learned_from, durations = every[: options.learn], every[options.learn :]
        jobs = replay_jobs(
            prior,
            durations,
            spacing=options.spacing,
            jitter=REPLAY_JITTER,
            seed=seed,
            learned_from=learned_from,
        )
        runs.append(
            PollerResult.measured(
                REPLAY,
                [job.requests for job in jobs],
                [job.lateness for job in jobs],
                [job.duration - options.shortest_duration for job in jobs],
            )
        )
    name = REPLAY if cold else "replay-warm"
    suffix = "" if prior == options.expected else f"-prior-{prior:g}s"
    return PollerResult.pooled(name + suffix, runs)


def variant_name(interval: float | None) -> str:
    return LEARNED if interval is None else f"fixed-{interval:g}s"


async def run_variant(
    interval: float | None,
    options: PollingOptions,
    folder: Path,
    *,
    cold: bool = False,
    seed: int | None = None,
) -> PollerResult:
    """The whole bot with the learned schedule (``interval`` None) or a fixed interval.

    ``cold``: a fresh bot (new database, so no learned durations) measured on its first
    ``options.cold_jobs`` jobs, with no learning phase: only the prior guides it.
    """
    learn, jobs = (0, options.cold_jobs) if cold else (options.learn, options.jobs)
    planner: PollSchedule | None = None
    if interval is not None:
        planner = FixedIntervalPlanner(interval, options.expected)
    simulator = simulator_config(options, options.seed if seed is None else seed)
    async with loopback(simulator, folder=folder, guilds=options.servers, members=10) as world:
        # The learned schedule spaces one job's polls by at least min(1 s, prior / 60): the bot
        # derives it from POLL_EXPECTED_SECONDS. Fixed planners replace it before any job exists.
        async with world.imagine_bot(
            planner=planner,
            GROK_RATE_LIMIT_PER_MINUTE=str(options.rate_limit),
            POLL_EXPECTED_SECONDS=str(options.prior),
        ) as app:
            services = app.services
            await run_phase(world, "learning", learn, options)
            measured = await run_phase(world, "measured", jobs, options)
        tasks = {task.request["prompt"]: task for task in world.simulator.tasks.values()}
        gets = status_requests_per_task(world.simulator)
        requests: list[int] = []
        lateness: list[float] = []
        above_minimum: list[float] = []
        for index, record in enumerate(measured):
            task = tasks[f"measured {index}"]
            posted = world.posted_at(record)
            assert posted is not None
            requests.append(gets[task.task_id])
            lateness.append(posted - task.completes_at)
            above_minimum.append(task.duration - options.shortest_duration)
    return PollerResult.measured(
        COLD if cold else variant_name(interval),
        requests,
        lateness,
        above_minimum,
        learned_samples=services.imagine.durations.observed if planner is None else None,
        http_answers=dict(world.simulator.answers),
    )


@dataclass(frozen=True)
class Variant:
    """One bot to run: its poller, its options (prior, seed) and whether it starts cold."""

    interval: float | None
    options: PollingOptions
    folder: Path
    cold: bool = False
    seed: int | None = None

    async def run(self) -> PollerResult:
        return await run_variant(
            self.interval, self.options, self.folder, cold=self.cold, seed=self.seed
        )


def run_isolated(variant: Variant) -> PollerResult:
    """One bot in this process, from scratch (the entry point of a worker process)."""
    quiet_logging()
    return asyncio.run(variant.run())


async def run_all(variants: list[Variant], parallel: int) -> list[PollerResult]:
    """Every variant, in order: in this process one after another, or in worker processes."""
    if parallel <= 1:
        results = []
        for variant in variants:
            result = await variant.run()
            print_row(result)
            results.append(result)
        return results
    loop = asyncio.get_running_loop()
    # Spawned, not forked: a fresh interpreter per bot, with nothing patched or running yet.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=parallel, mp_context=context) as pool:
        futures = [loop.run_in_executor(pool, run_isolated, variant) for variant in variants]
        results = await asyncio.gather(*futures)
    for result in results:
        print_row(result)
    return list(results)


def cold_name(prior: float, expected: float) -> str:
    return COLD if prior == expected else f"{COLD}-prior-{prior:g}s"


async def run(options: PollingOptions, folder: Path) -> dict[str, object]:
    intervals: list[float | None] = [None, *options.fixed]
    variants = [
        Variant(interval, options, folder / variant_name(interval)) for interval in intervals
    ]
    if options.cold:
        for prior in options.cold_priors:
            cold_options = replace(options, prior=prior)
            for number in range(options.cold_runs):
                variants.append(
                    Variant(
                        None,
                        cold_options,
                        folder / f"{cold_name(prior, options.expected)}-{number}",
                        cold=True,
                        seed=options.seed + number,
                    )
                )
    outcomes = await run_all(variants, options.parallel)
    results = outcomes[: len(intervals)]
    learned = results[0]
    target: dict[str, bool] = {"ratio_at_most_0.9": learned.ratio <= 0.9}
    figures: dict[str, object] = {
        "options": asdict(options),
        "pollers": [result.as_json() for result in results],
        "target": target,
    }
    if options.replay_seeds:
        # One 60-job run is a noisy figure: what the same warm bot averages to over many seeds.
        warm = replay(options, options.prior, cold=False)
        print_row(warm)
        figures["replay_warm"] = warm.as_json()
        target["replay_warm_ratio_at_most_0.9"] = warm.ratio <= 0.9
    if options.cold:
        cold_rows: list[PollerResult] = []
        figures["cold_runs"] = {}
        figures["cold_vs_warm"] = {}
        for index, prior in enumerate(options.cold_priors):
            start = len(intervals) + index * options.cold_runs
            runs = outcomes[start : start + options.cold_runs]
            name = cold_name(prior, options.expected)
            cold = PollerResult.pooled(name, runs)
            print_row(cold)
            cold_rows.append(cold)
            figures["cold_runs"][name] = [part.as_json() for part in runs]  # type: ignore[index]
            figures["cold_vs_warm"][name] = {  # type: ignore[index]
                "prior": prior,
                "cold_ratio": cold.ratio,
                "warm_ratio": learned.ratio,
                "cold_gets_per_job": cold.gets_per_job,
                "warm_gets_per_job": learned.gets_per_job,
                "cold_lateness_mean": cold.lateness_mean,
                "warm_lateness_mean": learned.lateness_mean,
            }
            target[f"{name}_ratio_at_most_0.9"] = cold.ratio <= 0.9
            if options.replay_seeds:
                replayed = replay(options, prior)
                print_row(replayed)
                figures["cold_vs_warm"][name]["replay"] = replayed.as_json()  # type: ignore[index]
                target[f"{REPLAY}{name.removeprefix(COLD)}_ratio_at_most_0.9"] = (
                    replayed.ratio <= 0.9
                )
        figures["pollers"] = [  # type: ignore[misc]
            *(row.as_json() for row in cold_rows),
            *figures["pollers"],  # type: ignore[misc]
        ]
    if options.fixed:
        # The slowest fixed poller is the cheap one to beat on requests at no worse lateness.
        slowest = next(r for r in results if r.poller == variant_name(max(options.fixed)))
        fewer = 1 - learned.gets_per_job / slowest.gets_per_job
        figures["fewer_gets_than_slowest_fixed"] = fewer
        target[f"35pct_fewer_gets_than_{slowest.poller}"] = fewer >= 0.35
        target[f"lateness_at_most_{slowest.poller}"] = (
            learned.lateness_mean <= slowest.lateness_mean
        )
    return figures


def print_row(row: PollerResult) -> None:
    print(
        f"{row.poller:<12} jobs={row.jobs} GETs/job={row.gets_per_job:.2f} "
        f"lateness mean={row.lateness_mean:.2f}s p95={row.lateness_p95:.2f}s "
        f"product={row.product:.2f} bound={row.bound:.2f} ratio={row.ratio:.3f}",
        flush=True,
    )


def parse_options(argv: list[str] | None = None) -> tuple[PollingOptions, bool]:
    defaults = PollingOptions()
    parser = argparse.ArgumentParser(prog="python -m bench.polling", description=__doc__)
    parser.add_argument("--expected", type=float, default=defaults.expected)
    parser.add_argument("--prior", type=float, default=defaults.prior)
    parser.add_argument("--learn", type=int, default=defaults.learn)
    parser.add_argument("--jobs", type=int, default=defaults.jobs)
    parser.add_argument("--spacing", type=float, default=defaults.spacing)
    parser.add_argument(
        "--fixed",
        default=None,
        help=f"e.g. 1,6 (default {','.join(f'{f:g}' for f in defaults.fixed)}; none with --cold)",
    )
    parser.add_argument("--rate-limit", type=int, default=defaults.rate_limit)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also measure the learned poller cold (no history, no learning phase)",
    )
    parser.add_argument("--cold-jobs", type=int, default=defaults.cold_jobs)
    parser.add_argument(
        "--cold-runs",
        type=int,
        default=defaults.cold_runs,
        help="new bots per prior, each with its own seed (pooled into one figure)",
    )
    parser.add_argument(
        "--replay-seeds",
        type=int,
        default=defaults.replay_seeds,
        help="the planner alone, replayed on this many seeds' durations (0: none)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=defaults.parallel,
        help=f"bots run at once, each in a process of its own (default {defaults.parallel})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1-second jobs, a few of each, not saved"
    )
    args = parser.parse_args(argv)
    if args.fixed is None:
        fixed = () if args.cold else defaults.fixed
    else:
        fixed = tuple(float(value) for value in args.fixed.split(",") if value)
    if args.quick:
        return (
            PollingOptions(
                expected=1.0,
                prior=2.0,
                learn=4,
                jobs=4,
                spacing=0.05,
                fixed=() if args.cold else (0.05, 0.2),
                cold=args.cold,
                cold_jobs=4,
                cold_runs=2,
                parallel=args.parallel,
                replay_seeds=min(args.replay_seeds, 5),
            ),
            True,
        )
    options = PollingOptions(
        expected=args.expected,
        prior=args.prior,
        learn=args.learn,
        jobs=args.jobs,
        spacing=args.spacing,
        fixed=fixed,
        rate_limit=args.rate_limit,
        seed=args.seed,
        cold=args.cold,
        cold_jobs=args.cold_jobs,
        cold_runs=args.cold_runs,
        parallel=args.parallel,
        replay_seeds=args.replay_seeds,
    )
    return options, False


def main(argv: list[str] | None = None) -> None:
    options, quick = parse_options(argv)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="bench-polling-") as folder:
        figures = asyncio.run(run(options, Path(folder)))
    print("targets:", figures["target"])
    if options.cold:
        comparisons = figures["cold_vs_warm"]
        assert isinstance(comparisons, dict)
        for name, comparison in comparisons.items():
            print(
                f"ratio to bound, prior {comparison['prior']:g} s: "
                f"cold={comparison['cold_ratio']:.3f} warm={comparison['warm_ratio']:.3f} ({name})"
            )
    if not quick:
        if options.cold:
            path = write_results("polling-cold", figures)
            # write_results() names the command after the results file: name the module instead.
            payload = json.loads(path.read_text())
            payload["command"] = payload["command"].replace("bench.polling-cold", "bench.polling")
            path.write_text(json.dumps(payload, indent=2) + "\n")
        else:
            path = write_results("polling", figures)
        print("written to", path)


if __name__ == "__main__":
    main()
