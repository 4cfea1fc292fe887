"""The discord.py client: answers slash commands and buttons, syncs the commands it was given.

It knows no feature: the composition root (``cogs.main``) adds them before it connects.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.i18n import Messages
from cogs.core.errors import ErrorReporter
from cogs.core.translator import CatalogTranslator

log = logging.getLogger(__name__)


class ImagineTree(app_commands.CommandTree["ImagineBot"]):
    """Routes every command error through the one error-to-message path."""

    async def on_error(
        self, interaction: discord.Interaction[ImagineBot], error: app_commands.AppCommandError
    ) -> None:
        await self.client.reporter.report(interaction, error)


class ImagineBot(commands.Bot):
    """imagine-bot's Discord side. Only slash commands: no privileged intents are needed."""

    def __init__(
        self,
        *,
        settings: Settings,
        messages: Messages,
        reporter: ErrorReporter,
        sync_commands: bool = True,
        **options: Any,
    ) -> None:
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
            owner_ids=set(settings.owner_ids),
            help_command=None,
            **options,
        )
        self.reporter = reporter
        self._translator = CatalogTranslator(messages)
        self._dev_guild_id = settings.dev_guild_id
        self._sync_commands = sync_commands

    async def setup_hook(self) -> None:
        await self.tree.set_translator(self._translator)
        if self._sync_commands:
            await self.sync_commands()

    async def sync_commands(self) -> None:
        if self._dev_guild_id is not None:
            guild = discord.Object(id=self._dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info(
                "synced %d commands to the development server %s", len(synced), self._dev_guild_id
            )
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands (they may take a while to appear)", len(synced))

    async def on_ready(self) -> None:
        log.info("connected as %s to %d servers", self.user, len(self.guilds))
