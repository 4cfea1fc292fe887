"""The buttons under a posted video: their state lives in the custom_id, so they survive
restarts (discord.py dynamic items)."""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

import discord

# The cog that answers the buttons; looked up by name, so this module needs no import of it.
IMAGINE_COG = "Imagine"


@runtime_checkable
class ResultActions(Protocol):
    async def on_result_button(
        self, interaction: discord.Interaction, action: str, job_id: str
    ) -> None: ...


def delete_custom_id(job_id: str) -> str:
    return f"imagine:delete:{job_id}"


# How each result button looks: emoji and style.
_BUTTON_LOOKS = {
    "reroll": ("🔁", discord.ButtonStyle.secondary),
    "remix": ("✏️", discord.ButtonStyle.secondary),
    "delete": ("🗑️", discord.ButtonStyle.danger),
    "cancel": ("✖️", discord.ButtonStyle.secondary),
}


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"imagine:(?P<action>reroll|remix|delete|cancel):(?P<job>[0-9a-f]{32})",
):
    """Reroll (same request again, charged to whoever clicks), Remix (the request in a form to
    edit, charged to whoever sends it), Delete (requester or admin), and Cancel under a job
    still waiting to be sent (requester or admin)."""

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
        cog = interaction.client.get_cog(IMAGINE_COG)
        assert isinstance(cog, ResultActions)
        await cog.on_result_button(interaction, self.action, self.job_id)


def queue_view(job_id: str, cancel_label: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ResultButton("cancel", job_id, cancel_label))
    return view


def result_view(
    job_id: str, *, reroll_label: str, remix_label: str, delete_label: str
) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ResultButton("reroll", job_id, reroll_label))
    view.add_item(ResultButton("remix", job_id, remix_label))
    view.add_item(ResultButton("delete", job_id, delete_label))
    return view
