"""Operator alerts on Discord: a direct message to each of the bot's owners (``OWNER_IDS``)."""

from __future__ import annotations

import logging

import aiohttp
import discord

log = logging.getLogger(__name__)

# Discord's JSON error code for a user the bot may not DM (no shared server, or DMs turned off).
CANNOT_MESSAGE_USER = 50007


class OperatorUnreachable(Exception):
    """No owner could be sent the alert."""


class DiscordOperatorSink:
    """``bot.alerts.AlertSink`` that DMs every owner; one unreachable owner doesn't stop the rest.

    ``send`` raises ``OperatorUnreachable`` only when there were owners and none got the alert,
    so that ``OperatorAlerts`` tries again at the next alert of that kind.
    """

    def __init__(self, client: discord.Client, owner_ids: frozenset[int]) -> None:
        self._client = client
        self._owner_ids = owner_ids

    async def send(self, text: str) -> None:
        if not self._owner_ids:
            log.warning("no OWNER_IDS are set: nobody to send an operator alert to")
            return
        reached = 0
        for owner_id in sorted(self._owner_ids):
            if await self._send_to(owner_id, text):
                reached += 1
        if reached == 0:
            raise OperatorUnreachable(f"none of the {len(self._owner_ids)} owners could be DMed")

    async def _send_to(self, owner_id: int, text: str) -> bool:
        try:
            user = self._client.get_user(owner_id) or await self._client.fetch_user(owner_id)
            await user.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.NotFound:
            log.warning("owner %s is not a Discord user: check OWNER_IDS", owner_id)
        except discord.Forbidden as error:
            if error.code == CANNOT_MESSAGE_USER:
                log.warning(
                    "owner %s cannot be sent direct messages (they share no server with the "
                    "bot, or have turned off DMs from server members)",
                    owner_id,
                )
            else:
                log.warning("Discord refused the DM to owner %s: %s", owner_id, error)
        except (discord.DiscordException, aiohttp.ClientError, OSError) as error:
            log.warning("the DM to owner %s failed: %r", owner_id, error)
        else:
            return True
        return False
