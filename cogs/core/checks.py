"""Who may do what: one answer for every command and button, from the interaction itself.

Discord resolves the member's permissions for each interaction (channel overrides included);
the bot's owners (``OWNER_IDS``) may manage every server.
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.config import Settings


def is_owner(interaction: discord.Interaction, settings: Settings) -> bool:
    return interaction.user.id in settings.owner_ids


def manages_server(interaction: discord.Interaction, settings: Settings) -> bool:
    """Manage Server, Administrator, or one of the bot's owners."""
    permissions = interaction.permissions
    return permissions.manage_guild or permissions.administrator or is_owner(interaction, settings)


def require_server_manager(interaction: discord.Interaction, settings: Settings) -> None:
    """Raise the error the one error path explains, unless the member manages the server.

    Checked on every call: Discord's command permissions may be overridden per server.
    """
    if not manages_server(interaction, settings):
        raise app_commands.MissingPermissions(["manage_guild"])


def is_requester_or_moderator(
    interaction: discord.Interaction, settings: Settings, requester: int
) -> bool:
    """The member who asked for it, anyone who manages messages or the server, or an owner."""
    return (
        interaction.user.id == requester
        or interaction.permissions.manage_messages
        or manages_server(interaction, settings)
    )
