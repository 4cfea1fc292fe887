"""Scale: a large store, start-up, memory, and delivering a large video.

1. Poller tick cost with ``--pending`` running jobs (far-future next poll) plus ``--due`` due
   ones, against 100 pending: a tick claims due jobs through an index, so its cost follows the
   due jobs, not the store. Timed with and without the periodic per-server pressure refresh.
2. Start-up in a fresh process: imports, then ``open_infrastructure`` and ``build_services``
   (migration check, learning durations from delivered jobs) on that store; resident memory
   afterwards.
3. Peak memory while delivering one video of 10 MB and of 100 MB: the bot runs in its own
   process, the stand-in (which keeps uploads in memory) and the simulator in this one, so the
   bot's VmHWM counts only the bot.

    python -m bench.scale [--pending 10000] [--due 5] [--video-mb 10,100] [--quick]

With ``--processes N`` (N ≥ 2) only the ticks, on PostgreSQL (``--database-url``, else
TEST_DATABASE_URL, else the local server; a fresh database each): N sets of services, each
with its own poller, as N processes would run them, tick at once in each interval; the
simulator's status requests are counted per task in every interval (no job may be polled twice
in one), with ``--pending`` and 100 running jobs and ``--due`` due ones, then ``--contended``
due ones. Full runs are written to ``bench/results/scale-processes.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import discord.gateway
import discord.http
import yarl
from sqlalchemy import insert, update
from sqlmodel import col

from bench.common import (
    API_TOKEN,
    fresh_postgres_database,
    headless_services,
    imagine_bot,
    loopback,
    memory_of,
    mib,
    postgres_admin_url,
    quiet_logging,
    redacted,
    wait_for_poller_steps,
    write_results,
)
from bot.app import Services
from bot.config import Settings, settings_from_mapping
from bot.grok import GenerateRequest
from bot.jobs import JobState
from bot.models import Job
from bot.poller import Poller
from bot.simulator import Simulator, SimulatorConfig

TICK_REPEATS = 30
INSERT_CHUNK = 500  # rows per multi-row INSERT, within SQLite's bound parameters
DELIVERY_WAIT = 300.0


@dataclass(frozen=True)
class ScaleOptions:
    pending: int = 10_000
    small: int = 100
    due: int = 5
    delivered: int = 1000  # history the start-up learns durations from
    video_mb: tuple[int, ...] = (10, 100)


def job_row(index: int, state: JobState, services: Services, **fields: Any) -> dict[str, Any]:
    now = services.infrastructure.clock.now()
    return {
        "id": uuid.uuid4().hex,
        "idempotency_key": uuid.uuid4().hex,
        "state": state,
        "guild_id": 1000 + index % 50,
        "channel_id": 2000 + index % 50,
        "member_id": 3000 + index % 500,
        "locale": "en",
        "prompt": f"a stored job {index}",
        "mode": "normal",
        "ratio": "16:9",
        "image_urls": [],
        "video_urls": [],
        "upload_limit_bytes": 10 * 1024 * 1024,
        "cost": 40,
        "created_at": now,
        "updated_at": now,
        "submitted_at": now,
        "poll_count": 0,
        "delivery_attempts": 0,
        "next_poll_at": None,
        "completed_at": None,
        "estimated_duration": None,
        **fields,
    }


async def insert_rows(services: Services, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), INSERT_CHUNK):
        async with services.infrastructure.database.transaction() as session:
            await session.exec(insert(Job).values(list(rows[start : start + INSERT_CHUNK])))


async def fill_store(services: Services, pending: int, delivered: int) -> None:
    """Running jobs polled again in a day, and delivered ones with learned durations."""
    clock = services.infrastructure.clock
    later = clock.now() + timedelta(days=1)
    running = [
        job_row(i, JobState.RUNNING, services, task_id=f"stored_{i}", next_poll_at=later)
        for i in range(pending)
    ]
    done = [
        job_row(
            i,
            JobState.DELIVERED,
            services,
            task_id=f"done_{i}",
            completed_at=clock.now(),
            estimated_duration=30.0 + i % 60,
        )
        for i in range(delivered)
    ]
    await insert_rows(services, running + done)


async def add_due_jobs(services: Services, count: int) -> list[str]:
    """Jobs with real tasks at the simulator (still generating), due now."""
    api = services.infrastructure.api
    rows = []
    for index in range(count):
        request = GenerateRequest(prompt=f"due job {index}")
        task_id = await api.submit(request, idempotency_key=uuid.uuid4().hex)
        rows.append(job_row(index, JobState.RUNNING, services, task_id=task_id))
    await insert_rows(services, rows)
    return [row["id"] for row in rows]


async def time_ticks(services: Services, poller: Poller, due_ids: list[str]) -> list[float]:
    """Seconds per tick, each with the due jobs made due again first."""
    infrastructure = services.infrastructure
    timings = []
    for _ in range(TICK_REPEATS):
        async with infrastructure.database.transaction() as session:
            await session.exec(
                update(Job)
                .where(col(Job.id).in_(due_ids))
                .values(next_poll_at=infrastructure.clock.now() - timedelta(seconds=1))
            )
        started = time.perf_counter()
        advanced = await poller.tick()
        await wait_for_poller_steps()  # the tick's steps (status requests) are part of its cost
        timings.append(time.perf_counter() - started)
        assert advanced == len(due_ids), f"the tick advanced {advanced} of {len(due_ids)} jobs"
    return timings


def bench_settings(database: Path, api_base: str, **overrides: str) -> Settings:
    values = {
        "DISCORD_TOKEN": "bench-token",
        "GROK_API_TOKEN": API_TOKEN,
        "GROK_API_BASE_URL": api_base,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "GROK_RATE_LIMIT_PER_MINUTE": "5000",
        "DEFAULT_GUILD_CREDITS": "100000",
        "LOG_LEVEL": "WARNING",
    }
    return settings_from_mapping(values | overrides)


@dataclass(frozen=True)
class TickFigures:
    pending: int
    due: int
    tick_ms_median: float
    tick_ms_max: float
    tick_with_pressure_refresh_ms_median: float
    seconds_until_due_ms_median: float


async def measure_ticks(pending: int, options: ScaleOptions, database: Path) -> TickFigures:
    # Due jobs stay pending for the whole measurement; the limit never binds.
    simulator = Simulator(
        SimulatorConfig(min_seconds=3600, max_seconds=7200, rate_limit_per_minute=5000)
    )
    api_base = await simulator.start()
    try:
        async with headless_services(bench_settings(database, api_base)) as services:
            await fill_store(services, pending, options.delivered)
            due_ids = await add_due_jobs(services, options.due)
            infrastructure = services.infrastructure
            with_refresh = Poller(
                service=services.imagine,
                database=infrastructure.database,
                jobs=infrastructure.jobs,
                limiter=infrastructure.limiter,
                clock=infrastructure.clock,
                metrics=infrastructure.metrics,
                pressure_refresh=0.0,
            )
            await time_ticks(services, services.poller, due_ids)  # warm caches and connections
            plain = await time_ticks(services, services.poller, due_ids)
            refreshing = await time_ticks(services, with_refresh, due_ids)
            until_due = []
            for _ in range(TICK_REPEATS):
                started = time.perf_counter()
                await services.poller.seconds_until_due()
                until_due.append(time.perf_counter() - started)
    finally:
        await simulator.close()
    return TickFigures(
        pending=pending,
        due=options.due,
        tick_ms_median=statistics.median(plain) * 1000,
        tick_ms_max=max(plain) * 1000,
        tick_with_pressure_refresh_ms_median=statistics.median(refreshing) * 1000,
        seconds_until_due_ms_median=statistics.median(until_due) * 1000,
    )


# --- several processes: two pollers on one PostgreSQL database -----------------------------------

CONTENDED_ROUNDS = 20


# The intervals run back to back, a few hundred milliseconds each: a key this large never binds,
# so every due job can be polled in every interval. (Under a binding budget the pollers claim
# only what it allows and leave the rest due, which this measurement is not about.)
PROCESSES_RATE_LIMIT = 60_000


def poller_settings(database_url: str, api_base: str, shard: int, processes: int) -> Settings:
    """The settings of process ``shard`` of ``processes`` on one PostgreSQL database."""
    return bench_settings(
        Path("unused"),
        api_base,
        DATABASE_URL=database_url,
        SHARD_COUNT=str(processes),
        SHARD_IDS=str(shard),
        GROK_RATE_LIMIT_PER_MINUTE=str(PROCESSES_RATE_LIMIT),
    )


async def make_due(services: Services, due_ids: list[str]) -> None:
    infrastructure = services.infrastructure
    async with infrastructure.database.transaction() as session:
        await session.exec(
            update(Job)
            .where(col(Job.id).in_(due_ids))
            .values(next_poll_at=infrastructure.clock.now() - timedelta(seconds=1))
        )


@dataclass(frozen=True)
class IntervalFigures:
    """One interval: the due jobs made due, then every poller's tick at once and their steps."""

    seconds: float
    claimed: tuple[int, ...]  # per poller
    polled_jobs: int  # distinct tasks asked about
    status_requests: int
    most_requests_for_one_job: int


async def concurrent_interval(
    simulator: Simulator, all_services: Sequence[Services], due_ids: list[str]
) -> IntervalFigures:
    await make_due(all_services[0], due_ids)
    seen_before = len(simulator.requests)
    started = time.perf_counter()
    claimed = await asyncio.gather(*(services.poller.tick() for services in all_services))
    await wait_for_poller_steps()  # every poller's steps run in this loop
    seconds = time.perf_counter() - started
    per_task = status_requests_per_task(simulator, since=seen_before)
    return IntervalFigures(
        seconds=seconds,
        claimed=tuple(claimed),
        polled_jobs=len(per_task),
        status_requests=sum(per_task.values()),
        most_requests_for_one_job=max(per_task.values(), default=0),
    )


@dataclass(frozen=True)
class ProcessTickFigures:
    pending: int
    due: int
    processes: int
    tick_ms_median: float  # the pollers' ticks at once, with their steps (status requests)
    tick_ms_max: float
    intervals: int
    jobs_polled_twice_in_an_interval: int
    jobs_not_polled_in_an_interval: int
    most_requests_for_one_job_in_an_interval: int
    claimed_per_poller: tuple[int, ...]  # summed over the timed intervals


def status_requests_per_task(simulator: Simulator, *, since: int = 0) -> Counter[str]:
    """``GET /v1/status`` requests per task among the simulator's requests from ``since`` on."""
    return Counter(
        seen.query.get("task_id", "")
        for seen in simulator.requests[since:]
        if seen.method == "GET" and seen.path == "/v1/status"
    )


async def measure_process_ticks(
    pending: int, due: int, options: ScaleOptions, *, admin_url: str, processes: int
) -> ProcessTickFigures:
    """``processes`` pollers (one set of services each) on a fresh PostgreSQL database."""
    simulator = Simulator(
        SimulatorConfig(
            min_seconds=3600, max_seconds=7200, rate_limit_per_minute=PROCESSES_RATE_LIMIT
        )
    )
    api_base = await simulator.start()
    try:
        async with (
            fresh_postgres_database(admin_url, "imagine_bench_scale") as url,
            contextlib.AsyncExitStack() as stack,
        ):
            all_services = [
                # One after the other: the first migrates the fresh database.
                await stack.enter_async_context(
                    headless_services(poller_settings(url, api_base, shard, processes))
                )
                for shard in range(processes)
            ]
            first = all_services[0]
            await fill_store(first, pending, options.delivered)
            due_ids = await add_due_jobs(first, due)
            for _ in range(3):  # warm caches and connections
                await concurrent_interval(simulator, all_services, due_ids)
            intervals = [
                await concurrent_interval(simulator, all_services, due_ids)
                for _ in range(TICK_REPEATS)
            ]
    finally:
        await simulator.close()
    timings = [interval.seconds for interval in intervals]
    return ProcessTickFigures(
        pending=pending,
        due=due,
        processes=processes,
        tick_ms_median=statistics.median(timings) * 1000,
        tick_ms_max=max(timings) * 1000,
        intervals=len(intervals),
        jobs_polled_twice_in_an_interval=sum(
            interval.status_requests - interval.polled_jobs for interval in intervals
        ),
        jobs_not_polled_in_an_interval=sum(due - interval.polled_jobs for interval in intervals),
        most_requests_for_one_job_in_an_interval=max(
            interval.most_requests_for_one_job for interval in intervals
        ),
        claimed_per_poller=tuple(
            sum(interval.claimed[n] for interval in intervals) for n in range(processes)
        ),
    )


async def run_processes(
    options: ScaleOptions, *, admin_url: str, processes: int, contended: int
) -> dict[str, object]:
    """Tick cost of ``processes`` pollers at once with a small and a large store, ``options.due``
    due jobs; then ``contended`` due jobs in the large store, to look for jobs polled twice."""
    rows = []
    for pending, due in (
        (options.small, options.due),
        (options.pending, options.due),
        (options.pending, contended),
    ):
        rows.append(
            await measure_process_ticks(
                pending, due, options, admin_url=admin_url, processes=processes
            )
        )
        print(rows[-1], flush=True)
    small, large = rows[0], rows[1]
    return {
        "options": asdict(options),
        "database": redacted(admin_url),
        "processes": processes,
        "tick_repeats": TICK_REPEATS,
        "ticks": [asdict(row) for row in rows],
        "target": {
            "tick_cost_independent_of_store_size": large.tick_ms_median
            < 1.5 * small.tick_ms_median,
            "no_job_polled_twice_in_an_interval": all(
                row.most_requests_for_one_job_in_an_interval <= 1 for row in rows
            ),
            "every_due_job_polled_each_interval": all(
                row.jobs_not_polled_in_an_interval == 0 for row in rows
            ),
        },
    }


# --- a fresh process: start-up, and the bot for the video deliveries -----------------------------


async def startup_child(database: Path) -> None:
    """Print when this process reached its first line, and what building the services took."""
    imported_at = time.monotonic()
    started = time.perf_counter()
    async with headless_services(bench_settings(database, "http://127.0.0.1:9")):
        built = time.perf_counter() - started
        memory = memory_of()
    figures = {"imported_at": imported_at, "build_services_s": built} | asdict(memory)
    print(json.dumps(figures), flush=True)


def point_discord_py_at(api_base: str, gateway_url: str) -> None:
    """What ``DiscordStandIn.patch_discord_py`` does, for a bot in another process."""
    discord.http.Route.BASE = api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


async def bot_child(args: argparse.Namespace) -> None:
    """Run imagine-bot against the parent's stand-in until stdin closes."""
    point_discord_py_at(args.api_base, args.gateway)
    settings = bench_settings(
        Path(args.database), args.simulator, DISCORD_TOKEN=args.token, POLL_EXPECTED_SECONDS="1.5"
    )
    async with imagine_bot(settings):
        print(json.dumps({"ready": asdict(memory_of())}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def measure_startup(database: Path) -> dict[str, object]:
    """Start-up of a fresh process on ``database``: interpreter and imports, then the services."""
    spawned_at = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.scale",
        "--startup-child",
        "--database",
        str(database),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await child.communicate()
    figures = json.loads(output.decode().strip().splitlines()[-1])
    return {
        "interpreter_and_imports_s": figures["imported_at"] - spawned_at,
        "build_services_s": figures["build_services_s"],
        "rss_mib": mib(figures["rss"]),
        "peak_mib": mib(figures["peak"]),
    }


@dataclass(frozen=True)
class DeliveryFigures:
    video_mib: float
    uploaded_mib: float
    bot_rss_ready_mib: float
    bot_peak_mib: float
    bot_peak_growth_mib: float  # VmHWM after the delivery - VmHWM when the bot was ready


async def measure_delivery(size_mb: int, folder: Path) -> DeliveryFigures:
    size = size_mb * 1024 * 1024
    config = SimulatorConfig(
        min_seconds=1.0, max_seconds=2.0, rate_limit_per_minute=1000, video_bytes=size
    )
    async with loopback(config, folder=folder) as world:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.scale",
            "--bot-child",
            "--api-base",
            world.standin.api_base,
            "--gateway",
            world.standin.gateway_url,
            "--simulator",
            world.simulator.url,
            "--token",
            world.standin.token,
            "--database",
            str(folder / f"deliver-{size_mb}.sqlite3"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        ready = json.loads(await child.stdout.readline())["ready"]
        record = await world.imagine(0, "a big video", attachment_size_limit=2 * size)
        await world.standin.wait_for(
            lambda: world.posted_at(record) is not None, limit=DELIVERY_WAIT
        )
        after = memory_of(child.pid)
        child.stdin.close()
        await child.wait()
        uploaded = record.followups[0].attachments[0].size
    return DeliveryFigures(
        video_mib=mib(size),
        uploaded_mib=mib(uploaded),
        bot_rss_ready_mib=mib(ready["rss"]),
        bot_peak_mib=mib(after.peak),
        bot_peak_growth_mib=mib(after.peak - ready["peak"]),
    )


async def run(options: ScaleOptions, folder: Path) -> dict[str, object]:
    ticks = []
    for pending in (options.small, options.pending):
        ticks.append(await measure_ticks(pending, options, folder / f"store-{pending}.sqlite3"))
        print(ticks[-1], flush=True)
    startup = await measure_startup(folder / f"store-{options.pending}.sqlite3")
    print("start-up:", startup, flush=True)
    deliveries = []
    for size_mb in options.video_mb:
        deliveries.append(await measure_delivery(size_mb, folder / f"video-{size_mb}"))
        print(deliveries[-1], flush=True)
    tick_growth = ticks[-1].tick_ms_median / ticks[0].tick_ms_median
    growths = [delivery.bot_peak_growth_mib for delivery in deliveries]
    return {
        "options": asdict(options),
        "ticks": [asdict(figures) for figures in ticks],
        "startup": startup,
        "deliveries": [asdict(delivery) for delivery in deliveries],
        "target": {
            "tick_cost_independent_of_store_size": tick_growth < 1.5,
            "delivery_memory_flat": max(growths) - min(growths) < 0.25 * max(options.video_mb),
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ScaleOptions()
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--pending", type=int, default=defaults.pending)
    parser.add_argument("--due", type=int, default=defaults.due)
    parser.add_argument("--delivered", type=int, default=defaults.delivered)
    parser.add_argument(
        "--video-mb", default=",".join(map(str, defaults.video_mb)), help="sizes, e.g. 10,100"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small store, 1 MB videos, not saved"
    )
    # Child processes this module starts: a fresh start-up, and the bot for the deliveries.
    parser.add_argument("--startup-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bot-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="pollers of that many processes on one PostgreSQL database: ticks only",
    )
    parser.add_argument(
        "--contended", type=int, default=100, help="due jobs in the look for double polls"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL server for --processes (default: TEST_DATABASE_URL or the local one)",
    )
    for name in ("--api-base", "--gateway", "--simulator", "--token", "--database"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main_processes(args: argparse.Namespace) -> None:
    if args.processes < 2:
        raise SystemExit("--processes must be at least 2")
    if args.quick:
        options, contended = ScaleOptions(pending=300, small=30, due=2, delivered=50), 20
    else:
        options = ScaleOptions(pending=args.pending, due=args.due, delivered=args.delivered)
        contended = args.contended
    figures = asyncio.run(
        run_processes(
            options,
            admin_url=postgres_admin_url(args.database_url),
            processes=args.processes,
            contended=contended,
        )
    )
    print("targets:", figures["target"])
    if not args.quick:
        print("written to", write_results("scale-processes", figures, module="scale"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_logging()
    if args.startup_child:
        asyncio.run(startup_child(Path(args.database)))
        return
    if args.bot_child:
        asyncio.run(bot_child(args))
        return
    if args.processes != 1:
        main_processes(args)
        return
    if args.quick:
        options = ScaleOptions(pending=300, small=30, due=2, delivered=50, video_mb=(1, 2))
    else:
        options = ScaleOptions(
            pending=args.pending,
            due=args.due,
            delivered=args.delivered,
            video_mb=tuple(int(size) for size in args.video_mb.split(",") if size),
        )
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        figures = asyncio.run(run(options, Path(folder)))
    print("targets:", figures["target"])
    if not args.quick:
        print("written to", write_results("scale", figures))


if __name__ == "__main__":
    main()
