"""Saturation: more jobs than the API key's rate limit can serve.

Jobs arrive faster than the limit allows (``--arrivals`` per minute, over ``--servers`` servers,
``--jobs`` in all). Every job costs at least one POST and one GET, so no bot can deliver more
than rpm / 2 jobs per minute for long. Measured:

* steady-state throughput: videos posted per minute while the backlog stands, from one longest
  generation after the first arrival (warm-up) to the last arrival (after it the backlog drains:
  the tail);
* overall throughput: jobs / (first command → last video);
* ``429`` answers, counted by the simulator; the bot's limiter knows the plan from the start
  and learns the server's view from every answer's headers.

    python -m bench.saturation [--rate-limit 100] [--jobs 300] [--arrivals 75] [--quick]

With ``--processes N`` (N ≥ 2) the same scenario runs twice on PostgreSQL (``--database-url``,
else TEST_DATABASE_URL, else the local server; a fresh database each): one bot process, then N
bot processes running shards 0…N-1 of N with the servers split across them. Full runs are
written to ``bench/results/saturation-processes.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import (
    API_TOKEN,
    Loopback,
    fresh_postgres_database,
    loopback,
    postgres_admin_url,
    quiet_logging,
    redacted,
    status_requests_per_task,
    write_results,
)
from bot.clock import SystemClock
from bot.db import Database
from bot.jobs import TERMINAL_STATES, JobState, JobStore
from bot.simulator import RecordedRequest, SimulatorConfig
from tests.support.bot_process import BotProcess
from tests.support.discord_standin import InteractionRecord

TARGET_SHARE = 0.9
PROGRESS_EVERY = 30.0  # seconds between progress lines on the console
CHECK_EVERY = 0.5  # seconds between looks at the store for the end of the run


@dataclass(frozen=True)
class SaturationOptions:
    rate_limit: int = 100
    jobs: int = 300
    arrivals: float = 75.0  # per minute: 1.5 times what the limit can serve
    expected: float = 40.0  # durations uniform on [0.5 E, 1.5 E]; the bot's prior is E too
    servers: int = 20
    seed: int = 7

    @property
    def physical_max(self) -> float:
        return self.rate_limit / 2


def per_minute(
    requests: list[RecordedRequest], posted: list[float], started: float
) -> list[dict[str, int]]:
    """POSTs, GETs and videos posted in each minute of the run: how the budget was split."""
    minutes = int(((posted[-1] if posted else started) - started) // 60) + 1
    rows = [{"minute": m, "posts": 0, "gets": 0, "videos": 0} for m in range(minutes)]
    for seen in requests:
        minute = int((seen.at - started) // 60)
        if 0 <= minute < minutes:
            rows[minute]["posts" if seen.method == "POST" else "gets"] += 1
    for moment in posted:
        rows[min(int((moment - started) // 60), minutes - 1)]["videos"] += 1
    return rows


async def wait_all_ended(
    options: SaturationOptions, database: Database, jobs: JobStore, started: float
) -> dict[JobState, int]:
    """Look at the store until every job has ended; a progress line now and then."""
    reported = time.monotonic()
    while True:
        async with database.transaction() as session:
            counts = await jobs.count_by_state(session)
        ended = sum(counts[state] for state in TERMINAL_STATES)
        if ended >= options.jobs:
            return counts
        if time.monotonic() - reported >= PROGRESS_EVERY:
            reported = time.monotonic()
            print(
                f"  {reported - started:6.0f} s: {counts[JobState.DELIVERED]} delivered,"
                f" {ended} ended",
                flush=True,
            )
        await asyncio.sleep(CHECK_EVERY)


async def arrive(options: SaturationOptions, world: Loopback) -> list[InteractionRecord]:
    records: list[InteractionRecord] = []
    for index in range(options.jobs):
        records.append(await world.imagine(index, f"saturation {index}"))
        await asyncio.sleep(60 / options.arrivals)
    return records


def figures_of(
    options: SaturationOptions,
    world: Loopback,
    *,
    records: list[InteractionRecord],
    counts: dict[JobState, int],
    started: float,
    last_arrival: float,
) -> dict[str, object]:
    posted = sorted(p for record in records if (p := world.posted_at(record)) is not None)
    timeline = per_minute(world.simulator.requests, posted, started)
    gets = status_requests_per_task(world.simulator)
    answers = dict(world.simulator.answers)
    posts = world.simulator.count("POST", "/v1/generate")
    warm_up_end = started + 1.5 * options.expected
    steady = [moment for moment in posted if warm_up_end <= moment <= last_arrival]
    window = last_arrival - warm_up_end
    steady_rate = len(steady) / window * 60 if window > 0 else 0.0
    overall_rate = len(posted) / (posted[-1] - started) * 60 if posted else 0.0
    return {
        "options": asdict(options),
        "physical_max_per_minute": options.physical_max,
        "steady_per_minute": steady_rate,
        "steady_share_of_max": steady_rate / options.physical_max,
        "steady_window_seconds": window,
        "overall_per_minute": overall_rate,
        "delivered": counts[JobState.DELIVERED],
        "ended_otherwise": {
            str(state): counts[state] for state in TERMINAL_STATES if state != JobState.DELIVERED
        },
        "posts": posts,
        "gets_per_task": sum(gets.values()) / max(len(gets), 1),
        "http_answers": answers,
        "answers_429": answers.get(429, 0),
        "run_seconds": (posted[-1] if posted else time.monotonic()) - started,
        "per_minute": timeline,
        "target": {
            "steady_at_least_90pct_of_max": steady_rate >= TARGET_SHARE * options.physical_max,
            "no_429": answers.get(429, 0) == 0,
        },
    }


def simulator_config(options: SaturationOptions) -> SimulatorConfig:
    return SimulatorConfig(
        min_seconds=0.5 * options.expected,
        max_seconds=1.5 * options.expected,
        rate_limit_per_minute=options.rate_limit,
        seed=options.seed,
    )


async def run(
    options: SaturationOptions, folder: Path, *, database_url: str | None = None
) -> dict[str, object]:
    """One bot, in this process; on SQLite in ``folder`` unless ``database_url`` is given."""
    overrides = {} if database_url is None else {"DATABASE_URL": database_url}
    async with loopback(
        simulator_config(options), folder=folder, guilds=options.servers, members=50
    ) as world:
        async with world.imagine_bot(
            GROK_RATE_LIMIT_PER_MINUTE=str(options.rate_limit),
            POLL_EXPECTED_SECONDS=str(options.expected),
            **overrides,
        ) as app:
            infrastructure = app.services.infrastructure
            started = time.monotonic()
            records = await arrive(options, world)
            last_arrival = time.monotonic()
            counts = await wait_all_ended(
                options, infrastructure.database, infrastructure.jobs, started
            )
        return figures_of(
            options,
            world,
            records=records,
            counts=counts,
            started=started,
            last_arrival=last_arrival,
        )


async def run_processes(
    options: SaturationOptions, folder: Path, *, database_url: str, processes: int
) -> dict[str, object]:
    """``processes`` bot processes, shard ``n`` of ``processes`` each, on one PostgreSQL database.

    Servers are split across the shards (server ``n`` on shard ``n % processes``); the stand-in
    and the simulator run in this process, as for one bot.
    """
    async with loopback(
        simulator_config(options),
        folder=folder,
        guilds=options.servers,
        members=50,
        shards=processes,
    ) as world:
        settings = {
            "DISCORD_TOKEN": world.standin.token,
            "GROK_API_TOKEN": API_TOKEN,
            "GROK_API_BASE_URL": world.simulator.url,
            "DATABASE_URL": database_url,
            "DEFAULT_GUILD_CREDITS": "100000",
            "LOG_LEVEL": "WARNING",
            "GROK_RATE_LIMIT_PER_MINUTE": str(options.rate_limit),
            "POLL_EXPECTED_SECONDS": str(options.expected),
            "SHARD_COUNT": str(processes),
        }
        bots: list[BotProcess] = []
        database = Database.from_url(database_url)
        try:
            bots = list(
                await asyncio.gather(
                    *(
                        BotProcess.start(
                            api_base=world.standin.api_base,
                            gateway=world.standin.gateway_url,
                            settings=settings | {"SHARD_IDS": str(shard)},
                        )
                        for shard in range(processes)
                    )
                )
            )
            started = time.monotonic()
            records = await arrive(options, world)
            last_arrival = time.monotonic()
            counts = await wait_all_ended(options, database, JobStore(clock=SystemClock()), started)
        finally:
            for bot in bots:
                await bot.stop()
            await database.dispose()
        figures = figures_of(
            options,
            world,
            records=records,
            counts=counts,
            started=started,
            last_arrival=last_arrival,
        )
    return {"processes": processes, **figures}


async def compare_processes(
    options: SaturationOptions, folder: Path, *, admin_url: str, processes: int
) -> dict[str, object]:
    """One process, then ``processes`` processes, each on a fresh PostgreSQL database."""
    async with fresh_postgres_database(admin_url, "imagine_bench_sat1") as url:
        print("one process on PostgreSQL…", flush=True)
        one = await run(options, folder / "one", database_url=url)
    async with fresh_postgres_database(admin_url, "imagine_bench_satn") as url:
        print(f"{processes} processes on PostgreSQL…", flush=True)
        several = await run_processes(
            options, folder / "several", database_url=url, processes=processes
        )
    several_target = several["target"]
    assert isinstance(several_target, dict)
    return {
        "database": redacted(admin_url),
        "processes": processes,
        "one_process": {"processes": 1, **one},
        "several_processes": several,
        "target": {
            f"{processes}_processes_steady_at_least_90pct_of_max": several_target[
                "steady_at_least_90pct_of_max"
            ],
            f"{processes}_processes_no_429": several_target["no_429"],
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SaturationOptions()
    parser = argparse.ArgumentParser(prog="python -m bench.saturation", description=__doc__)
    parser.add_argument("--rate-limit", type=int, default=defaults.rate_limit)
    parser.add_argument("--jobs", type=int, default=defaults.jobs)
    parser.add_argument("--arrivals", type=float, default=defaults.arrivals, help="per minute")
    parser.add_argument("--expected", type=float, default=defaults.expected)
    parser.add_argument("--servers", type=int, default=defaults.servers)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1-second jobs, a dozen, not saved"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="bot processes on one PostgreSQL database (compared with one process there)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL server for --processes (default: TEST_DATABASE_URL or the local one)",
    )
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> tuple[SaturationOptions, bool]:
    if args.quick:
        return SaturationOptions(rate_limit=600, jobs=12, arrivals=600, expected=1.0), True
    options = SaturationOptions(
        rate_limit=args.rate_limit,
        jobs=args.jobs,
        arrivals=args.arrivals,
        expected=args.expected,
        servers=args.servers,
        seed=args.seed,
    )
    return options, False


def parse_options(argv: list[str] | None = None) -> tuple[SaturationOptions, bool]:
    return options_from(parse_args(argv))


def print_figures(figures: dict[str, object]) -> None:
    for key in ("steady_per_minute", "steady_share_of_max", "overall_per_minute", "answers_429"):
        print(f"{key}: {figures[key]}")


def main_processes(args: argparse.Namespace) -> None:
    options, quick = options_from(args)
    if args.processes < 2:
        raise SystemExit("--processes must be at least 2 (one process is the plain run)")
    quiet_logging()
    admin_url = postgres_admin_url(args.database_url)
    with tempfile.TemporaryDirectory(prefix="bench-saturation-") as folder:
        figures = asyncio.run(
            compare_processes(options, Path(folder), admin_url=admin_url, processes=args.processes)
        )
    for label in ("one_process", "several_processes"):
        part = figures[label]
        assert isinstance(part, dict)
        print(f"{label.replace('_', ' ')} ({part['processes']}):")
        print_figures(part)
    print("targets:", figures["target"])
    if not quick:
        print("written to", write_results("saturation-processes", figures, module="saturation"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.processes != 1:
        main_processes(args)
        return
    options, quick = options_from(args)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="bench-saturation-") as folder:
        figures = asyncio.run(run(options, Path(folder)))
    print_figures(figures)
    timeline = figures["per_minute"]
    assert isinstance(timeline, list)
    for row in timeline:
        print(
            f"  minute {row['minute']}: {row['posts']} POSTs, {row['gets']} GETs, "
            f"{row['videos']} videos"
        )
    print("targets:", figures["target"])
    if not quick:
        print("written to", write_results("saturation", figures))


if __name__ == "__main__":
    main()
