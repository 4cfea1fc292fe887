"""Builds the domain once, from ``Settings``, in two steps around the Discord side's notifier.

1. ``open_infrastructure``: the connections and stores — database (migrated), one aiohttp
   session, the API client (or, for a dry run, the built-in simulator), the rate limiter.
2. ``build_services``: the use cases that need the notifier — starting and advancing jobs,
   budgets, the poller.

The composition root (``cogs.main``) calls both, with the Discord notifier in between; tests
and benchmarks use the same root. Nothing here reads settings on its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp

from bot import user_agent
from bot.alerts import AlertSink, OperatorAlerts, RunDetector
from bot.budget import Budgets
from bot.budget_alerts import BudgetAlertSink
from bot.budget_service import BudgetService
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import Database
from bot.grok import GrokClient
from bot.i18n import Messages
from bot.jobs import InteractionTokens, JobStore
from bot.metrics import Metrics
from bot.poller import Poller
from bot.ratelimit import RateLimiter
from bot.schedule import DurationModel, PollPlanner
from bot.service import ImagineService, JobNotifier
from bot.shared_budget import SharedRateBudget, budget_key
from bot.transcode import VideoShrinker
from bot.video import VideoFetcher

if TYPE_CHECKING:
    from bot.simulator import Simulator

log = logging.getLogger(__name__)

DRY_RUN_TOKEN = "dry-run"  # noqa: S105 - the in-process simulator accepts any token
# Never check one job more often than this, nor more often than 60 times per expected duration.
MAX_POLL_SPACING = 1.0


@dataclass
class Infrastructure:
    """Connections and stores, opened once per process and closed on the way out."""

    settings: Settings
    clock: Clock
    http: aiohttp.ClientSession
    database: Database
    api: GrokClient
    limiter: RateLimiter
    fetcher: VideoFetcher
    shrinker: VideoShrinker
    messages: Messages
    jobs: JobStore
    budgets: Budgets
    tokens: InteractionTokens
    metrics: Metrics
    alerts: OperatorAlerts
    shared_budget: SharedRateBudget | None
    simulator: Simulator | None

    async def close(self) -> None:
        await self.http.close()
        if self.shared_budget is not None:
            await self.shared_budget.close()
        if self.simulator is not None:
            await self.simulator.close()
        await self.database.dispose()


@dataclass
class Services:
    """The use cases the Discord side calls, and the poller that advances jobs."""

    infrastructure: Infrastructure
    imagine: ImagineService
    budgets: BudgetService
    poller: Poller

    @property
    def settings(self) -> Settings:
        return self.infrastructure.settings

    @property
    def messages(self) -> Messages:
        return self.infrastructure.messages

    async def refresh_metrics(self) -> None:
        """Read what metrics show from the database (before a scrape)."""
        infrastructure = self.infrastructure
        async with infrastructure.database.transaction() as session:
            counts = await infrastructure.jobs.count_by_state(session)
        infrastructure.metrics.set_job_states({state.value: n for state, n in counts.items()})


async def open_database(settings: Settings) -> Database:
    """The database, migrated (once, whichever process gets there first)."""
    database = Database.from_url(settings.database_url)
    try:
        await database.upgrade()
    except BaseException:
        await database.dispose()
        raise
    return database


async def open_infrastructure(
    settings: Settings,
    *,
    messages: Messages,
    alert_sink: AlertSink | None,
    database: Database | None = None,
    clock: Clock | None = None,
) -> Infrastructure:
    """Open (or take over) the database, then reach the API (or start the dry run's simulator).

    ``alert_sink`` reaches the operator (None: alerts are only logged and counted). The
    infrastructure owns ``database`` from here on and disposes of it when closed.
    """
    clock = clock or SystemClock()
    database = database or await open_database(settings)
    try:
        simulator, base_url, token = await _api_endpoint(settings, clock)
    except BaseException:
        await database.dispose()
        raise
    http = aiohttp.ClientSession(
        headers={"User-Agent": user_agent()},
        timeout=aiohttp.ClientTimeout(total=60, connect=10),
    )
    limiter = RateLimiter(settings.grok_rate_limit_per_minute, clock=clock)
    # On PostgreSQL, where several processes may run, the key's budget is kept in the database.
    shared_budget = (
        SharedRateBudget.for_plan(
            database,
            key=budget_key(token),
            per_minute=settings.grok_rate_limit_per_minute,
            clock=clock,
        )
        if database.dialect_name == "postgresql"
        else None
    )
    jobs = JobStore(clock=clock)
    metrics = Metrics(per_guild=settings.metrics_per_guild)
    metrics.watch_rate_budget(limiter.available)
    alerts = OperatorAlerts(
        alert_sink, clock=clock, on_alert=lambda kind: metrics.alerts.labels(kind=kind).inc()
    )
    runs = RunDetector()

    async def observe_api(endpoint: str, status: int | None, seconds: float) -> None:
        metrics.api_response(endpoint, status, seconds)
        if status is None:
            return
        run = runs.note_response(status)
        if run is not None:
            await alerts.alert(run, f"{runs.run(run)} answers in a row from {endpoint}: {status}")

    return Infrastructure(
        settings=settings,
        clock=clock,
        http=http,
        database=database,
        api=GrokClient(
            http,
            base_url=base_url,
            token=token,
            limiter=limiter,
            clock=clock,
            observer=observe_api,
            shared_budget=shared_budget,
        ),
        limiter=limiter,
        # Videos come over https; plain http only from the API's own configured origin (a
        # local simulator or a proxy the operator chose).
        fetcher=VideoFetcher(http, allowed_http_origins=[base_url]),
        # ffmpeg runs in its own processes, two at a time: a burst of large videos never
        # starves the event loop or the machine.
        shrinker=VideoShrinker(),
        messages=messages,
        jobs=jobs,
        budgets=Budgets(default_guild_credits=settings.default_guild_credits, clock=clock),
        tokens=InteractionTokens(database, jobs),
        metrics=metrics,
        alerts=alerts,
        shared_budget=shared_budget,
        simulator=simulator,
    )


async def _api_endpoint(settings: Settings, clock: Clock) -> tuple[Simulator | None, str, str]:
    """The API's address and key; without a key, a simulator started in this process."""
    if settings.grok_api_token is not None:
        return None, settings.grok_api_base_url, settings.grok_api_token.get_secret_value()
    # Imported only for a dry run: a real deployment never loads the simulator.
    from bot.simulator import Simulator, SimulatorConfig

    # A dry run shows the whole flow in well under a minute, not at real generation lengths
    # (and quicker still where generations are expected to be quicker).
    expected = settings.poll_expected_seconds
    config = SimulatorConfig(min_seconds=min(8.0, expected / 2), max_seconds=min(20.0, expected))
    simulator = Simulator(config, clock=clock)
    base_url = await simulator.start()
    log.warning(
        "GROK_API_TOKEN is not set: DRY RUN against the built-in simulator at %s. "
        "No real videos are made and no API credits are spent.",
        base_url,
    )
    return simulator, base_url, DRY_RUN_TOKEN


async def build_services(
    infrastructure: Infrastructure,
    notifier: JobNotifier,
    budget_alert_sink: BudgetAlertSink | None = None,
) -> Services:
    """The use cases, wired to ``notifier`` (jobs) and ``budget_alert_sink`` (alerts to admins);
    learns generation times from earlier jobs."""
    settings = infrastructure.settings
    durations = DurationModel(settings.poll_expected_seconds)
    min_interval = min(MAX_POLL_SPACING, settings.poll_expected_seconds / 60)
    wakeup = asyncio.Event()
    budgets = BudgetService(
        database=infrastructure.database,
        budgets=infrastructure.budgets,
        jobs=infrastructure.jobs,
        clock=infrastructure.clock,
        alert_sink=budget_alert_sink,
    )
    imagine = ImagineService(
        database=infrastructure.database,
        budgets=infrastructure.budgets,
        jobs=infrastructure.jobs,
        client=infrastructure.api,
        clock=infrastructure.clock,
        durations=durations,
        planner=PollPlanner(durations, min_interval=min_interval),
        notifier=notifier,
        credits_per_video=settings.credits_per_video,
        job_timeout=timedelta(minutes=settings.job_timeout_minutes),
        wakeup=wakeup,
        metrics=infrastructure.metrics,
        alerts=infrastructure.alerts,
        requests_per_minute=settings.grok_rate_limit_per_minute,
        after_spend=budgets.announce_alerts if budget_alert_sink is not None else None,
    )
    await imagine.warm_up()
    poller = Poller(
        service=imagine,
        database=infrastructure.database,
        jobs=infrastructure.jobs,
        limiter=infrastructure.limiter,
        clock=infrastructure.clock,
        metrics=infrastructure.metrics,
        wakeup=wakeup,
    )
    return Services(infrastructure=infrastructure, imagine=imagine, budgets=budgets, poller=poller)
