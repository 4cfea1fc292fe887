"""Builds every domain service once, from ``Settings``, and tears them down again.

The Discord adapter receives the finished ``Services`` and never reads settings on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import aiohttp

from bot import user_agent
from bot.budget import Budgets
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import Database
from bot.grok import GrokClient
from bot.i18n import Messages
from bot.jobs import JobStore
from bot.poller import Poller
from bot.ratelimit import RateLimiter
from bot.schedule import DurationModel, PollPlanner, PollSchedule
from bot.service import ImagineService
from bot.simulator import Simulator, SimulatorConfig
from bot.video import VideoFetcher

log = logging.getLogger(__name__)

# A dry run should show the whole flow in a minute, not make the operator wait for real lengths.
DRY_RUN_SIMULATOR = SimulatorConfig(min_seconds=8.0, max_seconds=20.0)
SIMULATOR_TOKEN = "dry-run"  # noqa: S105 - the in-process simulator accepts any token


@dataclass
class Services:
    """Everything the Discord layer needs, built once per process."""

    settings: Settings
    clock: Clock
    http: aiohttp.ClientSession
    database: Database
    budgets: Budgets
    jobs: JobStore
    limiter: RateLimiter
    client: GrokClient
    durations: DurationModel
    planner: PollSchedule
    service: ImagineService
    poller: Poller
    fetcher: VideoFetcher
    messages: Messages
    simulator: Simulator | None = None

    async def close(self) -> None:
        await self.poller.stop()
        await self.http.close()
        if self.simulator is not None:
            await self.simulator.close()
        await self.database.dispose()


async def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    simulator_config: SimulatorConfig | None = None,
    poll_min_interval: float = 1.0,
    planner: PollSchedule | None = None,
) -> Services:
    """Connect to the database (migrating it), the API (or the simulator), and wire the rest.

    ``planner`` replaces the learned poll schedule (benchmarks compare fixed intervals with it).
    """
    clock = clock or SystemClock()
    database = Database.from_url(settings.database_url)
    await database.upgrade()

    simulator: Simulator | None = None
    base_url = settings.grok_api_base_url
    token = settings.grok_api_token.reveal() if settings.grok_api_token else None
    if token is None:
        simulator = Simulator(simulator_config or DRY_RUN_SIMULATOR, clock=clock)
        base_url = await simulator.start()
        token = SIMULATOR_TOKEN
        log.warning(
            "GROK_API_TOKEN is not set: DRY RUN against the built-in simulator at %s. "
            "No real videos are made and no API credits are spent.",
            base_url,
        )

    http = aiohttp.ClientSession(
        headers={"User-Agent": user_agent()},
        timeout=aiohttp.ClientTimeout(total=60, connect=10),
    )
    limiter = RateLimiter(settings.grok_rate_limit_per_minute, clock=clock)
    client = GrokClient(http, base_url=base_url, token=token, limiter=limiter, clock=clock)
    durations = DurationModel(settings.poll_expected_seconds)
    planner = planner or PollPlanner(durations, min_interval=poll_min_interval)
    budgets = Budgets(default_guild_credits=settings.default_guild_credits, clock=clock)
    jobs = JobStore(clock=clock)
    service = ImagineService(
        database=database,
        budgets=budgets,
        jobs=jobs,
        client=client,
        clock=clock,
        durations=durations,
        planner=planner,
        job_timeout=timedelta(minutes=settings.job_timeout_minutes),
    )
    await service.warm_up()
    poller = Poller(service=service, database=database, jobs=jobs, limiter=limiter, clock=clock)
    # Videos come over https; plain http only from the API's own configured origin (a local
    # simulator or proxy the operator chose).
    fetcher = VideoFetcher(http, allowed_http_origins=[base_url])
    return Services(
        settings=settings,
        clock=clock,
        http=http,
        database=database,
        budgets=budgets,
        jobs=jobs,
        limiter=limiter,
        client=client,
        durations=durations,
        planner=planner,
        service=service,
        poller=poller,
        fetcher=fetcher,
        messages=Messages.load(),
        simulator=simulator,
    )
