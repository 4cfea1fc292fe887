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
from bot.coordination import IdentifyTurns
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


class ImagineBot(commands.AutoShardedBot):
    """imagine-bot's Discord side. Only slash commands: no privileged intents are needed.

    Sharded: Discord's recommended number of shards by default, or this process's
    ``SHARD_IDS`` of ``SHARD_COUNT`` when several processes share the bot.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        messages: Messages,
        reporter: ErrorReporter,
        identify_turns: IdentifyTurns,
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
            shard_count=settings.shard_count,
            shard_ids=list(settings.shard_ids) if settings.shard_ids is not None else None,
            **options,
        )
        self.reporter = reporter
        self._translator = CatalogTranslator(messages)
        self._dev_guild_id = settings.dev_guild_id
        # Only one process syncs the commands: the one running shard 0.
        self._sync_commands = sync_commands and settings.syncs_commands
        self._identify_turns = identify_turns
        self._identify_buckets = 1
        self._shares_gateway = settings.shares_gateway

    async def setup_hook(self) -> None:
        if self._shares_gateway:
            # How many shards may IDENTIFY per 5 s, bot-wide: only several processes need it
            # (one process spaces its own shards); discord.py asks for the rest itself.
            _shards, _url, limits = await self.http.get_bot_gateway()
            self._identify_buckets = max(1, int(limits["max_concurrency"]))
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

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # Replaces discord.py's 5 s pause between this process's shards: the turn is taken in
        # the database, so shards of other processes are spaced too.
        await self._identify_turns.take((shard_id or 0) % self._identify_buckets)

    async def on_ready(self) -> None:
        log.info("connected as %s to %d servers", self.user, len(self.guilds))
