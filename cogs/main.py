"""The composition root: builds the domain, the Discord client and the notifier once, adds the
features, and runs the poller exactly as long as the bot is logged in.

Call order: ``open_infrastructure`` (database, HTTP, API) → ``ImagineBot`` → ``DiscordNotifier``
→ ``build_services`` (the use cases, which report through the notifier) → each feature's
``setup``. Tests and benchmarks assemble the app through ``assembled`` too.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord

from bot.app import Services, build_services, open_infrastructure
from bot.clock import Clock
from bot.config import Settings
from cogs import FEATURES
from cogs.core.client import ImagineBot
from cogs.core.errors import ErrorReporter
from cogs.imagine.notifier import DiscordNotifier, NotifierOptions

log = logging.getLogger(__name__)


@dataclass
class App:
    bot: ImagineBot
    services: Services


@contextlib.asynccontextmanager
async def assembled(
    settings: Settings, *, clock: Clock | None = None, **client_options: Any
) -> AsyncIterator[App]:
    """Everything wired and ready to log in; all of it closed on the way out."""
    infrastructure = await open_infrastructure(settings, clock=clock)
    try:
        reporter = ErrorReporter(infrastructure.messages, settings.credits_per_video)
        async with ImagineBot(
            settings=settings, messages=infrastructure.messages, reporter=reporter, **client_options
        ) as bot:
            notifier = DiscordNotifier(
                bot,
                messages=infrastructure.messages,
                fetcher=infrastructure.fetcher,
                tokens=infrastructure.tokens,
                clock=infrastructure.clock,
                options=NotifierOptions(
                    dry_run=settings.dry_run, job_timeout_minutes=settings.job_timeout_minutes
                ),
            )
            services = await build_services(infrastructure, notifier)
            for name in FEATURES:
                await importlib.import_module(name).setup(bot, services, reporter)
            try:
                yield App(bot=bot, services=services)
            finally:
                await services.poller.stop()
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
