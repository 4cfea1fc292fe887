"""/budget: members see what is left; admins set, top up and audit their server's budget."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Services
from bot.budget import BudgetChangeRefused, BudgetView, Period
from bot.config import BudgetAdmins
from bot.errors import InvalidInput, MissingPermission
from bot.i18n import Messages, format_number
from bot.models import LedgerEntry
from cogs.errors import language_for, reporting_errors
from cogs.render import EMBED_COLOUR, NO_PINGS, mention, timestamp
from cogs.translator import text

if TYPE_CHECKING:
    from cogs.client import ImagineBot

HISTORY_PAGE_SIZE = 10
USAGE_LINES = 20

PERIOD_CHOICES = [
    app_commands.Choice(name=text("no reset", "cmd.choice.period_none"), value="none"),
    app_commands.Choice(name=text("daily", "cmd.choice.period_daily"), value="daily"),
    app_commands.Choice(name=text("weekly", "cmd.choice.period_weekly"), value="weekly"),
    app_commands.Choice(name=text("monthly", "cmd.choice.period_monthly"), value="monthly"),
]


def parse_period(value: str | None) -> Period | None:
    """The chosen period; Discord offers only the choices, but the bot does not rely on it."""
    if value is None:
        return None
    try:
        return Period(value)
    except ValueError:
        raise BudgetChangeRefused("unknown_period") from None


def _signed(language: str, amount: int) -> str:
    number = format_number(language, abs(amount))
    return f"+{number}" if amount > 0 else (f"-{number}" if amount < 0 else "±0")


def budget_embed(
    messages: Messages, language: str, view: BudgetView, credits_per_video: int
) -> discord.Embed:
    per_video = max(credits_per_video, 1)

    def amount(value: int) -> str:
        return messages.text(
            language,
            "units.credits_videos",
            credits=value,
            videos=messages.videos(language, max(value, 0) // per_video),
        )

    embed = discord.Embed(title=messages.text(language, "budget.view.title"), colour=EMBED_COLOUR)
    embed.add_field(
        name=messages.text(language, "budget.view.remaining"),
        value=amount(view.remaining),
        inline=False,
    )
    embed.add_field(
        name=messages.text(language, "budget.view.limit"), value=amount(view.limit + view.bonus)
    )
    embed.add_field(name=messages.text(language, "budget.view.spent"), value=amount(view.spent))
    embed.add_field(
        name=messages.text(language, "budget.view.reserved"), value=amount(view.reserved)
    )
    period = messages.text(language, f"budget.view.period_{view.period.value}")
    embed.add_field(name=messages.text(language, "budget.view.period"), value=period)
    resets = (
        timestamp(view.resets_at, "R")
        if view.resets_at is not None
        else messages.text(language, "budget.view.never")
    )
    embed.add_field(name=messages.text(language, "budget.view.resets"), value=resets)
    if view.member_used is not None:
        if view.member_cap is not None:
            # What the member can still make: their cap, unless the server runs out first.
            left = min(max(view.member_cap - view.member_used, 0), view.remaining)
            yours = messages.text(
                language,
                "budget.view.your_cap",
                used=view.member_used,
                cap=view.member_cap,
                videos=messages.videos(language, left // per_video),
            )
        else:
            yours = messages.text(
                language,
                "budget.view.your_use",
                used=view.member_used,
                videos=messages.videos(language, view.member_used // per_video),
            )
        embed.add_field(
            name=messages.text(language, "budget.view.yours"), value=yours, inline=False
        )
    if view.updated_by is not None and view.updated_at is not None:
        embed.add_field(
            name="\u200b",
            value=messages.text(
                language,
                "budget.view.updated",
                actor=mention(view.updated_by),
                when=timestamp(view.updated_at),
            ),
            inline=False,
        )
    return embed


def history_embed(
    messages: Messages, language: str, entries: list[LedgerEntry], page: int, pages: int
) -> discord.Embed:
    lines = []
    for entry in entries:
        who_id = entry.actor_id or entry.member_id
        who = mention(who_id) if who_id else messages.text(language, "budget.history.system")
        job = (
            messages.text(language, "budget.history.job", job=entry.job_id[:8])
            if entry.job_id
            else ""
        )
        lines.append(
            messages.text(
                language,
                "budget.history.entry",
                when=timestamp(entry.created_at, "f"),
                kind=messages.text(language, f"budget.history.kind_{entry.kind}"),
                amount=_signed(language, entry.amount),
                who=who,
                job=job,
            )
        )
    embed = discord.Embed(
        title=messages.text(language, "budget.history.title"),
        description="\n".join(lines) or messages.text(language, "budget.history.empty"),
        colour=EMBED_COLOUR,
    )
    embed.set_footer(
        text=messages.text(language, "budget.history.page", page=page + 1, pages=max(pages, 1))
    )
    return embed


class HistoryPageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"budget:history:(?P<guild>\d+):(?P<page>\d+):(?P<dir>[pn])",
):
    """Previous/next page of /budget history; its state lives in the custom_id."""

    def __init__(
        self, guild_id: int, page: int, direction: str, label: str = "", *, disabled: bool = False
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label or ("◀" if direction == "p" else "▶"),
                style=discord.ButtonStyle.secondary,
                custom_id=f"budget:history:{guild_id}:{page}:{direction}",
                disabled=disabled,
            )
        )
        self.guild_id = guild_id
        self.page = page

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button[Any],
        match: re.Match[str],
        /,
    ) -> HistoryPageButton:
        return cls(int(match["guild"]), int(match["page"]), match["dir"])

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog(BudgetCog.__cog_name__)
        assert isinstance(cog, BudgetCog)
        await reporting_errors(
            interaction, cog.show_history_page(interaction, self.guild_id, self.page, edit=True)
        )


class BudgetCog(commands.Cog, name="Budget"):
    """The /budget command group."""

    # Discord takes default_member_permissions only on a top-level command, and /budget show is
    # for every member, so the group stays visible and each admin subcommand checks the
    # member's permissions itself (``_require_admin``), before doing anything else.
    budget = app_commands.Group(
        name=text("budget", "cmd.budget.name"),
        description=text("This server's video budget", "cmd.budget.description"),
        guild_only=True,
    )

    def __init__(self, bot: ImagineBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.messages = services.messages

    # --- who may do what --------------------------------------------------------------------

    def _is_owner(self, user: discord.abc.User) -> bool:
        return user.id in self.services.settings.owner_ids

    def _require_admin(self, interaction: discord.Interaction) -> None:
        """Checked on every call: the admin subcommands are visible to every member."""
        if self._is_owner(interaction.user):
            return
        # The permissions Discord resolved for this very interaction, not the role cache.
        permissions = interaction.permissions
        if not (permissions.manage_guild or permissions.administrator):
            raise MissingPermission("error.manage_server")

    def _may_raise(self, interaction: discord.Interaction) -> bool:
        if self._is_owner(interaction.user):
            return True
        return self.services.settings.budget_admins is BudgetAdmins.GUILD

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

    # --- commands ---------------------------------------------------------------------------

    @budget.command(
        name=text("show", "cmd.budget.show_name"),
        description=text(
            "Show the server's budget and your own use", "cmd.budget.show_description"
        ),
    )
    async def show(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        async with self.services.database.transaction() as session:
            view = await self.services.budgets.view(
                session, interaction.guild_id, interaction.user.id
            )
        await self._reply(interaction, self._embed(interaction, view))

    @budget.command(
        name=text("set", "cmd.budget.set_name"),
        description=text("Set the server's budget (Manage Server)", "cmd.budget.set_description"),
    )
    @app_commands.rename(
        amount=text("credits", "cmd.budget.credits_name"),
        period=text("period", "cmd.budget.period_name"),
        per_member=text("per_member", "cmd.budget.per_member_name"),
    )
    @app_commands.describe(
        amount=text("Credits per period", "cmd.budget.credits_set_description"),
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
        amount: app_commands.Range[int, 0, 100_000_000],
        period: str | None = None,
        per_member: app_commands.Range[int, 0, 100_000_000] | None = None,
    ) -> None:
        self._require_admin(interaction)
        chosen_period = parse_period(period)
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        async with self.services.database.transaction() as session:
            view = await self.services.budgets.set_budget(
                session,
                interaction.guild_id,
                credits=amount,
                period=chosen_period,
                member_cap=per_member or None,
                clear_member_cap=per_member == 0,
                actor_id=interaction.user.id,
                may_raise=self._may_raise(interaction),
            )
        await self._reply(interaction, self._embed(interaction, view, saved=True))

    @budget.command(
        name=text("add", "cmd.budget.add_name"),
        description=text(
            "Top the budget up, or deduct with a negative number (Manage Server)",
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
        amount: app_commands.Range[int, -100_000_000, 100_000_000],
    ) -> None:
        self._require_admin(interaction)
        if amount == 0:
            raise InvalidInput("budget.error.zero_amount")
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        async with self.services.database.transaction() as session:
            view = await self.services.budgets.add_credits(
                session,
                interaction.guild_id,
                amount,
                actor_id=interaction.user.id,
                may_raise=self._may_raise(interaction),
            )
        await self._reply(interaction, self._embed(interaction, view, saved=True))

    @budget.command(
        name=text("history", "cmd.budget.history_name"),
        description=text("Recent budget entries (Manage Server)", "cmd.budget.history_description"),
    )
    async def history(self, interaction: discord.Interaction) -> None:
        self._require_admin(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        await self.show_history_page(interaction, interaction.guild_id, 0, edit=False)

    @budget.command(
        name=text("usage", "cmd.budget.usage_name"),
        description=text(
            "Spend by member in this period (Manage Server)", "cmd.budget.usage_description"
        ),
    )
    async def usage(self, interaction: discord.Interaction) -> None:
        self._require_admin(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        language = language_for(interaction)
        per_video = max(self.services.settings.credits_per_video, 1)
        async with self.services.database.transaction() as session:
            rows = await self.services.budgets.usage(session, interaction.guild_id)
        lines = [
            self.messages.text(
                language,
                "budget.usage.line",
                rank=rank,
                member=mention(member_id),
                credits=used,
                videos=self.messages.videos(language, used // per_video),
            )
            for rank, (member_id, used) in enumerate(rows[:USAGE_LINES], start=1)
        ]
        embed = discord.Embed(
            title=self.messages.text(language, "budget.usage.title"),
            description="\n".join(lines) or self.messages.text(language, "budget.usage.empty"),
            colour=EMBED_COLOUR,
        )
        await self._reply(interaction, embed)

    # --- helpers ----------------------------------------------------------------------------

    def _embed(
        self, interaction: discord.Interaction, view: BudgetView, *, saved: bool = False
    ) -> discord.Embed:
        language = language_for(interaction)
        embed = budget_embed(
            self.messages, language, view, self.services.settings.credits_per_video
        )
        if saved:
            embed.description = self.messages.text(language, "budget.view.saved")
        return embed

    async def show_history_page(
        self, interaction: discord.Interaction, guild_id: int, page: int, *, edit: bool
    ) -> None:
        if interaction.guild_id != guild_id:
            raise MissingPermission("error.manage_server")
        if edit:
            self._require_admin(interaction)
            await interaction.response.defer()
        language = language_for(interaction)
        async with self.services.database.transaction() as session:
            entries, total = await self.services.budgets.history(
                session, guild_id, limit=HISTORY_PAGE_SIZE, offset=page * HISTORY_PAGE_SIZE
            )
        pages = max(1, math.ceil(total / HISTORY_PAGE_SIZE))
        page = min(page, pages - 1)
        embed = history_embed(self.messages, language, entries, page, pages)
        view = discord.ui.View(timeout=None)
        view.add_item(
            HistoryPageButton(
                guild_id,
                max(page - 1, 0),
                "p",
                self.messages.text(language, "budget.history.previous"),
                disabled=page == 0,
            )
        )
        view.add_item(
            HistoryPageButton(
                guild_id,
                min(page + 1, pages - 1),
                "n",
                self.messages.text(language, "budget.history.next"),
                disabled=page >= pages - 1,
            )
        )
        if edit:
            await interaction.edit_original_response(embed=embed, view=view)
        else:
            await self._reply(interaction, embed, view)
