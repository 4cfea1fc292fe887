"""Budget alerts on Discord: the domain's ``BudgetAlertSink``, posting in the admins' channel."""

from __future__ import annotations

import discord

from bot.budget_alerts import BudgetAlert
from bot.clock import Clock
from bot.i18n import pick_language
from cogs.budget.render import BudgetRenderer
from cogs.core.render import NO_PINGS


class DiscordBudgetAlerts:
    """Posts each alert in its channel, in the server's language; pings only a chosen role."""

    def __init__(self, bot: discord.Client, *, render: BudgetRenderer, clock: Clock) -> None:
        self._bot = bot
        self._render = render
        self._clock = clock

    async def post(self, alert: BudgetAlert) -> None:
        channel = self._bot.get_channel(alert.channel_id) or await self._bot.fetch_channel(
            alert.channel_id
        )
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"channel {alert.channel_id} cannot hold messages")
        guild = self._bot.get_guild(alert.guild_id)
        language = pick_language(guild.preferred_locale.value if guild is not None else None)
        embed = self._render.alert(language, alert, self._clock.now())
        if alert.ping_role_id is None:
            await channel.send(embed=embed, allowed_mentions=NO_PINGS)
            return
        await channel.send(
            content=f"<@&{alert.ping_role_id}>",
            embed=embed,
            allowed_mentions=discord.AllowedMentions(
                everyone=False, users=False, roles=[discord.Object(alert.ping_role_id)]
            ),
        )
