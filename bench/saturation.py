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
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import loopback, quiet_logging, status_requests_per_task, write_results
from bot.app import Infrastructure
from bot.jobs import TERMINAL_STATES, JobState
from bot.simulator import RecordedRequest, SimulatorConfig
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


async def run(options: SaturationOptions, folder: Path) -> dict[str, object]:
    simulator = SimulatorConfig(
        min_seconds=0.5 * options.expected,
        max_seconds=1.5 * options.expected,
        rate_limit_per_minute=options.rate_limit,
        seed=options.seed,
    )
    async with loopback(simulator, folder=folder, guilds=options.servers, members=50) as world:
        records: list[InteractionRecord] = []

        async def arrive() -> None:
            for index in range(options.jobs):
                records.append(await world.imagine(index, f"saturation {index}"))
                await asyncio.sleep(60 / options.arrivals)

        async def all_ended(store: Infrastructure) -> dict[JobState, int]:
            reported = time.monotonic()
            while True:
                async with store.database.transaction() as session:
                    counts = await store.jobs.count_by_state(session)
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

        async with world.imagine_bot(
            GROK_RATE_LIMIT_PER_MINUTE=str(options.rate_limit),
            POLL_EXPECTED_SECONDS=str(options.expected),
        ) as app:
            started = time.monotonic()
            await arrive()
            last_arrival = time.monotonic()
            counts = await all_ended(app.services.infrastructure)
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


def parse_options(argv: list[str] | None = None) -> tuple[SaturationOptions, bool]:
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
    args = parser.parse_args(argv)
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


def main(argv: list[str] | None = None) -> None:
    options, quick = parse_options(argv)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="bench-saturation-") as folder:
        figures = asyncio.run(run(options, Path(folder)))
    for key in ("steady_per_minute", "steady_share_of_max", "overall_per_minute", "answers_429"):
        print(f"{key}: {figures[key]}")
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
