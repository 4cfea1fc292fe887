"""Runs the bot: domain services first, then the Discord client, and both closed on the way out."""

from __future__ import annotations

import logging

import discord

from bot.app import build_services
from bot.config import Settings
from cogs.client import ImagineBot

log = logging.getLogger(__name__)


async def run_bot(settings: Settings) -> int:
    """Start everything and run until interrupted; the process exit status."""
    services = await build_services(settings)
    try:
        async with ImagineBot(services) as bot:
            await bot.start(settings.discord_token.reveal())
    except discord.LoginFailure:
        log.error("Discord refused DISCORD_TOKEN: check the bot token in .env")
        return 2
    except OSError as error:
        # Network trouble is the operator's to fix, not a bug: one line, no traceback.
        log.error("could not reach Discord: %s", error)
        return 1
    finally:
        await services.close()
    return 0
