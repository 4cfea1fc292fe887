"""The composition root: builds the domain, the Discord client and the notifier once, adds the
features, and runs the poller exactly as long as the bot is logged in.

Call order: the database (migrated once, whichever process gets there first) →
``ImagineBot`` (no I/O yet; it takes its identify turns from the database) →
``open_infrastructure`` (HTTP, API; alerts reach the operators through the client) →
``DiscordNotifier`` → ``build_services`` (the use cases, which report through the notifier) →
each feature's ``setup``. Tests and benchmarks assemble the app through ``assembled`` too.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord

from bot.app import Services, build_services, open_database, open_infrastructure
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.coordination import IdentifyTurns
from bot.i18n import Messages
from bot.monitoring import MonitoringServer
from cogs import FEATURES
from cogs.budget.alerts import DiscordBudgetAlerts
from cogs.budget.render import BudgetRenderer
from cogs.core.client import ImagineBot
from cogs.core.errors import ErrorReporter
from cogs.core.operator import DiscordOperatorSink
from cogs.imagine.notifier import DiscordNotifier, NotifierOptions

log = logging.getLogger(__name__)


# The poller passes at least every few seconds; this long without a pass means it is stuck.
POLLER_STALE_AFTER = 60.0


@dataclass
class App:
    bot: ImagineBot
    services: Services
    monitoring: MonitoringServer


def _monitoring(bot: ImagineBot, services: Services) -> MonitoringServer:
    """Metrics and health endpoints; what they read from Discord is read here."""
    metrics = services.infrastructure.metrics

    def connected() -> bool:
        return bot.is_ready() and not bot.is_closed()

    metrics.watch_gateway(
        latency=lambda: bot.latency if connected() else float("nan"),
        shards=lambda: float(sum(not shard.is_closed() for shard in bot.shards.values())),
    )

    async def database() -> tuple[bool, str]:
        await services.infrastructure.database.ping()
        return True, ""

    async def gateway() -> tuple[bool, str]:
        return connected(), "" if connected() else "not connected to the Discord gateway"

    async def poller() -> tuple[bool, str]:
        age = metrics.seconds_since_last_tick()
        fresh = age <= POLLER_STALE_AFTER
        return fresh, "" if fresh else f"no poller pass for {age:.0f} s"

    return MonitoringServer(
        metrics,
        {"database": database, "gateway": gateway, "poller": poller},
        before_scrape=services.refresh_metrics,
    )


@contextlib.asynccontextmanager
async def assembled(
    settings: Settings, *, clock: Clock | None = None, **client_options: Any
) -> AsyncIterator[App]:
    """Everything wired and ready to log in; all of it closed on the way out."""
    clock = clock or SystemClock()
    messages = Messages.load()
    reporter = ErrorReporter(messages, settings.credits_per_video)
    database = await open_database(settings)
    identify_turns = IdentifyTurns(database, clock)
    try:
        bot = ImagineBot(
            settings=settings,
            messages=messages,
            reporter=reporter,
            identify_turns=identify_turns,
            **client_options,
        )
    except BaseException:
        await database.dispose()
        raise
    async with bot:
        infrastructure = await open_infrastructure(
            settings,
            messages=messages,
            alert_sink=DiscordOperatorSink(bot, settings.owner_ids) if settings.owner_ids else None,
            database=database,
            clock=clock,
        )
        try:
            notifier = DiscordNotifier(
                bot,
                messages=messages,
                fetcher=infrastructure.fetcher,
                shrinker=infrastructure.shrinker,
                tokens=infrastructure.tokens,
                clock=clock,
                metrics=infrastructure.metrics,
                options=NotifierOptions(
                    dry_run=settings.dry_run, job_timeout_minutes=settings.job_timeout_minutes
                ),
            )
            budget_alerts = DiscordBudgetAlerts(
                bot, render=BudgetRenderer(messages, settings.credits_per_video), clock=clock
            )
            services = await build_services(infrastructure, notifier, budget_alerts)
            for name in FEATURES:
                await importlib.import_module(name).setup(bot, services, reporter)
            monitoring = _monitoring(bot, services)
            if settings.metrics_port is not None:
                await monitoring.start(settings.metrics_host, settings.metrics_port)
            try:
                yield App(bot=bot, services=services, monitoring=monitoring)
            finally:
                await services.poller.stop()
                await monitoring.stop()
                await identify_turns.close()
        finally:
            await infrastructure.close()


async def serve(app: App, token: str) -> None:
    """Log in, then run the poller for as long as the gateway session lasts."""
    await app.bot.login(token)
    # After login: deliveries need the application id and the REST session.
    app.services.poller.start()
    try:
        await app.bot.connect()
    finally:
        await app.services.poller.stop()


async def run(settings: Settings) -> int:
    """Start everything and run until interrupted; the process exit status."""
    try:
        async with assembled(settings) as app:
            await serve(app, settings.discord_token.get_secret_value())
    except discord.LoginFailure:
        log.error("Discord refused DISCORD_TOKEN: check the bot token in .env")
        return 2
    except OSError as error:
        # Network trouble is the operator's to fix, not a bug: one line, no traceback.
        log.error("could not reach Discord: %s", error)
        return 1
    return 0
