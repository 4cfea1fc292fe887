"""What every feature's messages share: colours, timestamps, mentions, no stray pings."""

from __future__ import annotations

from datetime import datetime

import discord

PROMPT_PREVIEW = 1000
EMBED_COLOUR = discord.Colour.from_rgb(88, 101, 242)
FAILURE_COLOUR = discord.Colour.from_rgb(237, 66, 69)
SUCCESS_COLOUR = discord.Colour.from_rgb(87, 242, 135)

# Echoed text never pings anyone; only the requester is mentioned, and only where we say so.
NO_PINGS = discord.AllowedMentions.none()


def timestamp(moment: datetime, style: str = "R") -> str:
    """A Discord timestamp: every reader sees it in their own time zone and language."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def mention(user_id: int) -> str:
    return f"<@{user_id}>"


def message_link(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def only_pinging(user_id: int) -> discord.AllowedMentions:
    return discord.AllowedMentions(
        everyone=False, roles=False, replied_user=False, users=[discord.Object(id=user_id)]
    )


def shorten(text: str, limit: int = PROMPT_PREVIEW) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
