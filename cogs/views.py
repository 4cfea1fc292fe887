"""The buttons under a posted video: their state lives in the custom_id, so they survive
restarts (discord.py dynamic items)."""

from __future__ import annotations

import re
from typing import Any

import discord

from cogs.errors import reporting_errors


def delete_custom_id(job_id: str) -> str:
    return f"imagine:delete:{job_id}"


# How each result button looks: emoji and style.
_BUTTON_LOOKS = {
    "reroll": ("🔁", discord.ButtonStyle.secondary),
    "delete": ("🗑️", discord.ButtonStyle.danger),
}


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"imagine:(?P<action>reroll|delete):(?P<job>[0-9a-f]{32})",
):
    """Reroll (same request again, charged to whoever clicks) or Delete (requester or admin).

    The job id lives in the custom_id, so the buttons keep working after a restart.
    """

    def __init__(self, action: str, job_id: str, label: str) -> None:
        emoji, style = _BUTTON_LOOKS[action]
        super().__init__(
            discord.ui.Button(
                label=label, emoji=emoji, style=style, custom_id=f"imagine:{action}:{job_id}"
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button[Any],
        match: re.Match[str],
        /,
    ) -> ResultButton:
        return cls(match["action"], match["job"], item.label or "")

    async def callback(self, interaction: discord.Interaction) -> None:
        from cogs.imagine import ImagineCog  # imported late: that module imports this one

        cog = interaction.client.get_cog(ImagineCog.__cog_name__)
        assert isinstance(cog, ImagineCog)
        step = cog.reroll if self.action == "reroll" else cog.delete_result
        await reporting_errors(interaction, step(interaction, self.job_id))
