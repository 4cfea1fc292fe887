"""Previous/next buttons of /budget history: their state lives in the custom_id, so they keep
working after a restart (discord.py dynamic items)."""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

import discord

# The cog that turns the pages; looked up by name, so this module needs no import of it.
BUDGET_COG = "Budget"


@runtime_checkable
class HistoryPages(Protocol):
    async def on_history_button(
        self, interaction: discord.Interaction, guild_id: int, page: int
    ) -> None: ...


class HistoryPageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"budget:history:(?P<guild>\d+):(?P<page>\d+):(?P<dir>[pn])",
):
    """Turns /budget history to another page."""

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
        cog = interaction.client.get_cog(BUDGET_COG)
        assert isinstance(cog, HistoryPages)
        await cog.on_history_button(interaction, self.guild_id, self.page)


def history_view(
    guild_id: int, page: int, pages: int, previous: str, next_: str
) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(HistoryPageButton(guild_id, max(page - 1, 0), "p", previous, disabled=page == 0))
    view.add_item(
        HistoryPageButton(
            guild_id, min(page + 1, pages - 1), "n", next_, disabled=page >= pages - 1
        )
    )
    return view
