"""The language an interaction is answered in."""

from __future__ import annotations

import discord

from bot.i18n import pick_language


def language_for(interaction: discord.Interaction) -> str:
    """The member's language, else the server's, else English."""
    guild_locale = str(interaction.guild_locale) if interaction.guild_locale else None
    return pick_language(str(interaction.locale), guild_locale)
