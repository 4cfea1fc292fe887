"""/credits (German /guthaben): any member's view of what the server has left for them."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.budget_service import BudgetService
from cogs.budget.render import BudgetRenderer
from cogs.core.locale import language_for
from cogs.core.render import NO_PINGS
from cogs.core.translator import text


class CreditsCog(commands.Cog, name="Credits"):
    """/credits, for everyone."""

    def __init__(self, budgets: BudgetService, *, render: BudgetRenderer) -> None:
        self.budgets = budgets
        self.render = render

    @app_commands.command(
        name=text("credits", "cmd.credits.name"),
        description=text(
            "What this server has left for videos, your own use and your videos on the way",
            "cmd.credits.description",
        ),
    )
    @app_commands.guild_only()
    async def credits(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        overview = await self.budgets.overview(interaction.guild_id, interaction.user.id)
        embed = self.render.credits(language_for(interaction), overview)
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_PINGS)
