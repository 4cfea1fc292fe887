"""The discord.py client: built once with the domain's services, loads the cogs, syncs."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Services
from cogs.errors import report_error
from cogs.translator import CatalogTranslator

log = logging.getLogger(__name__)


class ImagineTree(app_commands.CommandTree["ImagineBot"]):
    """Routes every command error through the one error-to-message path."""

    async def on_error(
        self, interaction: discord.Interaction[ImagineBot], error: app_commands.AppCommandError
    ) -> None:
        await report_error(interaction, error)


class ImagineBot(commands.Bot):
    """imagine-bot's Discord side. Only slash commands: no privileged intents are needed."""

    def __init__(self, services: Services, *, sync_commands: bool = True, **options: Any) -> None:
        # The bot never joins voice: the warnings about missing voice libraries are noise.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=ImagineTree,
            allowed_mentions=discord.AllowedMentions.none(),
            owner_ids=set(services.settings.owner_ids),
            help_command=None,
            **options,
        )
        self.services = services
        self._sync_commands = sync_commands

    async def setup_hook(self) -> None:
        from cogs.budget import BudgetCog, HistoryPageButton
        from cogs.imagine import ImagineCog
        from cogs.views import ResultButton

        await self.tree.set_translator(CatalogTranslator(self.services.messages))
        await self.add_cog(ImagineCog(self, self.services))
        await self.add_cog(BudgetCog(self, self.services))
        # Result and history buttons keep working after a restart: their state is in custom_id.
        self.add_dynamic_items(ResultButton, HistoryPageButton)
        if self._sync_commands:
            await self.sync_commands()

    async def sync_commands(self) -> None:
        guild_id = self.services.settings.dev_guild_id
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to the development server %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands (they may take a while to appear)", len(synced))

    async def on_ready(self) -> None:
        log.info("connected as %s to %d servers", self.user, len(self.guilds))
