"""Budgets on Discord: /budget for admins, /credits for every member."""

from __future__ import annotations

from discord.ext import commands

from bot.app import Services
from cogs.budget.admin import BudgetCog
from cogs.budget.credits import CreditsCog
from cogs.budget.render import BudgetRenderer
from cogs.budget.views import HistoryPageButton
from cogs.core.errors import ErrorReporter


async def setup(bot: commands.Bot, services: Services, reporter: ErrorReporter) -> None:
    render = BudgetRenderer(services.messages, services.settings.credits_per_video)
    await bot.add_cog(
        BudgetCog(
            services.budgets,
            settings=services.settings,
            messages=services.messages,
            render=render,
            reporter=reporter,
        )
    )
    await bot.add_cog(CreditsCog(services.budgets, render=render))
    # History pages keep turning after a restart: their state is in the custom_id.
    bot.add_dynamic_items(HistoryPageButton)
