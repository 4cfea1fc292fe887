"""/imagine on Discord: the command, Apps → Animate, the buttons, and the notifier the domain
calls."""

from __future__ import annotations

from discord.ext import commands

from bot.app import Services
from cogs.core.errors import ErrorReporter
from cogs.imagine.command import ImagineCog
from cogs.imagine.views import ResultButton


async def setup(bot: commands.Bot, services: Services, reporter: ErrorReporter) -> None:
    await bot.add_cog(
        ImagineCog(
            services.imagine,
            settings=services.settings,
            messages=services.messages,
            reporter=reporter,
            metrics=services.infrastructure.metrics,
            tree=bot.tree,
        )
    )
    # The result and queue buttons keep working after a restart: their state is in the
    # custom_id.
    bot.add_dynamic_items(ResultButton)
