"""/budget: admins set, top up and audit their server's budget.

The whole command is synced with ``default_member_permissions`` = Manage Server, so Discord
hides it from members; every call is checked again here (``interaction_check``), because a
server may widen who sees it with its own command permissions.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.budget_alerts import DEFAULT_THRESHOLD_PERCENT, MAX_THRESHOLD_PERCENT
from bot.budget_service import BudgetService
from bot.charts import named_members, render_usage_chart_async, usage_chart
from bot.config import BudgetAdmins, Settings
from bot.errors import InvalidInput
from bot.i18n import Messages
from cogs.budget.render import BudgetRenderer
from cogs.budget.views import BUDGET_COG, history_view
from cogs.core.checks import is_owner, require_server_manager
from cogs.core.errors import ErrorReporter
from cogs.core.locale import language_for
from cogs.core.render import NO_PINGS
from cogs.core.translator import text

HISTORY_PAGE_SIZE = 10
MAX_CREDITS = 100_000_000
# Members with their own colour in the usage chart; the rest are summed up as "others".
CHART_MEMBERS = 5
# What the bot needs in a channel to post budget warnings there.
_ALERT_CHANNEL_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True
)

PERIOD_CHOICES = [
    app_commands.Choice(name=text("no reset", "cmd.choice.period_none"), value="none"),
    app_commands.Choice(name=text("daily", "cmd.choice.period_daily"), value="daily"),
    app_commands.Choice(name=text("weekly", "cmd.choice.period_weekly"), value="weekly"),
    app_commands.Choice(name=text("monthly", "cmd.choice.period_monthly"), value="monthly"),
]


class BudgetCog(commands.Cog, name=BUDGET_COG):
    """The /budget command group, for admins."""

    budget = app_commands.Group(
        name=text("budget", "cmd.budget.name"),
        description=text("Manage this server's video budget", "cmd.budget.description"),
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    alerts = app_commands.Group(
        name=text("alerts", "cmd.budget.alerts_name"),
        description=text(
            "Warnings in a channel before the budget runs out", "cmd.budget.alerts_description"
        ),
        parent=budget,
    )

    def __init__(
        self,
        budgets: BudgetService,
        *,
        settings: Settings,
        messages: Messages,
        render: BudgetRenderer,
        reporter: ErrorReporter,
    ) -> None:
        self.budgets = budgets
        self.settings = settings
        self.messages = messages
        self.render = render
        self.reporter = reporter

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        require_server_manager(interaction, self.settings)
        return True

    def _may_raise(self, interaction: discord.Interaction) -> bool:
        if is_owner(interaction, self.settings):
            return True
        return self.settings.budget_admins is BudgetAdmins.GUILD

    async def _reply(
        self,
        interaction: discord.Interaction,
        embed: discord.Embed,
        view: discord.ui.View | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"embed": embed, "ephemeral": True, "allowed_mentions": NO_PINGS}
        if view is not None:
            kwargs["view"] = view
        await interaction.followup.send(**kwargs)

    @budget.command(
        name=text("show", "cmd.budget.show_name"),
        description=text("Every figure of this period's budget", "cmd.budget.show_description"),
    )
    async def show(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        view = await self.budgets.view(interaction.guild_id, interaction.user.id)
        await self._reply(interaction, self.render.budget(language_for(interaction), view))

    @budget.command(
        name=text("set", "cmd.budget.set_name"),
        description=text(
            "Set this period's budget, its period or the cap per member",
            "cmd.budget.set_description",
        ),
    )
    @app_commands.rename(
        amount=text("credits", "cmd.budget.credits_name"),
        period=text("period", "cmd.budget.period_name"),
        per_member=text("per_member", "cmd.budget.per_member_name"),
    )
    @app_commands.describe(
        amount=text(
            "The budget per period, replacing any top-up (default: unchanged)",
            "cmd.budget.credits_set_description",
        ),
        period=text("When the budget resets (default: unchanged)", "cmd.budget.period_description"),
        per_member=text(
            "Most credits one member may use per period (0 removes the cap)",
            "cmd.budget.per_member_description",
        ),
    )
    @app_commands.choices(period=PERIOD_CHOICES)
    async def set_budget(
        self,
        interaction: discord.Interaction,
        amount: app_commands.Range[int, 0, MAX_CREDITS] | None = None,
        period: str | None = None,
        per_member: app_commands.Range[int, 0, MAX_CREDITS] | None = None,
    ) -> None:
        if amount is None and period is None and per_member is None:
            raise InvalidInput("budget.error.nothing_to_change")
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        view = await self.budgets.set_budget(
            interaction.guild_id,
            credits=amount,
            period=period,
            per_member=per_member,
            actor_id=interaction.user.id,
            may_raise=self._may_raise(interaction),
        )
        await self._reply(interaction, self.render.saved(language_for(interaction), view))

    @budget.command(
        name=text("add", "cmd.budget.add_name"),
        description=text(
            "Top up this period's budget, or deduct with a negative number",
            "cmd.budget.add_description",
        ),
    )
    @app_commands.rename(amount=text("credits", "cmd.budget.credits_name"))
    @app_commands.describe(
        amount=text("Credits to add (negative to deduct)", "cmd.budget.credits_add_description")
    )
    async def add(
        self,
        interaction: discord.Interaction,
        amount: app_commands.Range[int, -MAX_CREDITS, MAX_CREDITS],
    ) -> None:
        if amount == 0:
            raise InvalidInput("budget.error.zero_amount")
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        view = await self.budgets.add_credits(
            interaction.guild_id,
            amount,
            actor_id=interaction.user.id,
            may_raise=self._may_raise(interaction),
        )
        await self._reply(interaction, self.render.added(language_for(interaction), view, amount))

    @budget.command(
        name=text("history", "cmd.budget.history_name"),
        description=text(
            "Every change of the budget, newest first", "cmd.budget.history_description"
        ),
    )
    async def history(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        await self._show_history_page(interaction, interaction.guild_id, 0, edit=False)

    @budget.command(
        name=text("usage", "cmd.budget.usage_name"),
        description=text(
            "Spend by member and day in this period, as a chart", "cmd.budget.usage_description"
        ),
    )
    async def usage(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild is not None
        guild = interaction.guild
        language = language_for(interaction)
        rows = await self.budgets.usage(guild.id)
        daily = await self.budgets.daily_usage(guild.id)
        named = named_members(daily.spend, top=CHART_MEMBERS)
        # At most six lookups, at once; a member not found is drawn by id.
        found = await asyncio.gather(*(self._display_name(guild, member_id) for member_id in named))
        names = {member_id: name for member_id, name in zip(named, found, strict=True) if name}
        chart = usage_chart(
            daily.spend,
            period_start=daily.budget.period_start.date(),
            today=daily.today,
            names=names,
            others_label=self.messages.text(language, "budget.usage.others"),
            budget=daily.budget.limit + daily.budget.bonus,
            labels=self.render.chart_labels(language),
            top=CHART_MEMBERS,
        )
        embed = self.render.usage(language, rows)
        if chart is None:  # nothing spent yet: the words say so, no empty picture
            await self._reply(interaction, embed)
            return
        png = await render_usage_chart_async(chart)
        embed.description = "\n\n".join(
            part for part in (embed.description, self.render.chart_summary(language, chart)) if part
        )
        embed.set_image(url="attachment://usage.png")
        picture = discord.File(
            io.BytesIO(png),
            filename="usage.png",
            description=self.messages.text(language, "budget.usage.alt"),
        )
        await interaction.followup.send(
            embed=embed, file=picture, ephemeral=True, allowed_mentions=NO_PINGS
        )

    async def _display_name(self, guild: discord.Guild, member_id: int) -> str | None:
        """A member's name for the chart (a picture cannot show a mention); None if gone."""
        member = guild.get_member(member_id)
        if member is None:
            try:
                member = await guild.fetch_member(member_id)
            except discord.HTTPException:
                return None  # left the server
        return member.display_name

    # --- budget warnings ----------------------------------------------------------------------

    @alerts.command(
        name=text("on", "cmd.budget.alerts_on_name"),
        description=text(
            "Warn in a channel when spend crosses a share of the budget, and when it's used up",
            "cmd.budget.alerts_on_description",
        ),
    )
    @app_commands.rename(
        channel=text("channel", "cmd.budget.channel_name"),
        at=text("at", "cmd.budget.at_name"),
        role=text("role", "cmd.budget.role_name"),
    )
    @app_commands.describe(
        channel=text("Where the warnings are posted", "cmd.budget.channel_description"),
        at=text(
            "Percent of the budget that triggers the early warning (default 80)",
            "cmd.budget.at_description",
        ),
        role=text(
            "A role to ping with each warning (default: nobody is pinged)",
            "cmd.budget.role_description",
        ),
    )
    async def alerts_on(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        at: app_commands.Range[int, 1, MAX_THRESHOLD_PERCENT] = DEFAULT_THRESHOLD_PERCENT,
        role: discord.Role | None = None,
    ) -> None:
        guild = interaction.guild
        assert guild is not None
        # Refused before anything is saved: a warning nobody can see is worse than none.
        if guild.me is None or not channel.permissions_for(guild.me).is_superset(
            _ALERT_CHANNEL_PERMISSIONS
        ):
            raise InvalidInput("budget.alerts.cannot_post", channel=channel.mention)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.budgets.configure_alerts(
            guild.id,
            channel_id=channel.id,
            at_percent=at,
            ping_role_id=role.id if role is not None else None,
            actor_id=interaction.user.id,
        )
        language = language_for(interaction)
        if role is None:
            saved = self.messages.text(
                language, "budget.alerts.saved", channel=channel.mention, at=at
            )
        else:
            saved = self.messages.text(
                language,
                "budget.alerts.saved_ping",
                channel=channel.mention,
                at=at,
                role=role.mention,
            )
        await self._reply(interaction, discord.Embed(description=saved))

    @alerts.command(
        name=text("off", "cmd.budget.alerts_off_name"),
        description=text("Stop the budget warnings", "cmd.budget.alerts_off_description"),
    )
    async def alerts_off(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        was_on = await self.budgets.disable_alerts(interaction.guild_id)
        key = "budget.alerts.off" if was_on else "budget.alerts.were_off"
        await self._reply(
            interaction,
            discord.Embed(description=self.messages.text(language_for(interaction), key)),
        )

    async def on_history_button(
        self, interaction: discord.Interaction, guild_id: int, page: int
    ) -> None:
        await self.reporter.guard(
            interaction, self._show_history_page(interaction, guild_id, page, edit=True)
        )

    async def _show_history_page(
        self, interaction: discord.Interaction, guild_id: int, page: int, *, edit: bool
    ) -> None:
        if edit:
            # A button press is not a command: the check runs here.
            require_server_manager(interaction, self.settings)
        if interaction.guild_id != guild_id:
            raise app_commands.MissingPermissions(["manage_guild"])
        if edit:
            await interaction.response.defer()
        language = language_for(interaction)
        shown = await self.budgets.history(guild_id, page, page_size=HISTORY_PAGE_SIZE)
        messages = self.messages
        view = history_view(
            guild_id,
            shown.page,
            shown.pages,
            messages.text(language, "budget.history.previous"),
            messages.text(language, "budget.history.next"),
        )
        embed = self.render.history(language, shown)
        if edit:
            await interaction.edit_original_response(embed=embed, view=view)
        else:
            await self._reply(interaction, embed, view)
