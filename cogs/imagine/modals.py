"""The request form that Animate and Remix open: a prompt, a mode and a ratio.

Discord allows five top-level components in a modal; this one uses three Labels (a text input
and two selects). Labels are 45 characters at most, select options 25 at most: the catalogs'
texts and the API's five ratios and three modes fit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from bot.api_contract import DEFAULT_MODE, MODES, SPICY_MODE, accepts_images
from bot.i18n import Messages

# Discord's limit for a text input's value, whatever the bot's own prompt limit is.
MAX_TEXT_INPUT_LENGTH = 4000
_RATIO_LABEL_KEYS = {
    "16:9": "cmd.choice.ratio_landscape",
    "9:16": "cmd.choice.ratio_portrait",
    "1:1": "cmd.choice.ratio_square",
    "2:3": "cmd.choice.ratio_tall",
    "3:2": "cmd.choice.ratio_wide",
}

SubmitHandler = Callable[[discord.Interaction, str, str, str], Awaitable[None]]


def offered_modes(*, channel_is_nsfw: bool, with_images: bool) -> list[str]:
    """The modes worth offering here: spicy only where it may be used at all."""
    return [
        mode
        for mode in MODES
        if (mode != SPICY_MODE or channel_is_nsfw) and (accepts_images(mode) or not with_images)
    ]


class RequestForm(discord.ui.Modal):
    """Prompt, mode and ratio; ``on_request`` gets them when the member sends the form."""

    def __init__(
        self,
        messages: Messages,
        language: str,
        *,
        title_key: str,
        custom_id: str,
        on_request: SubmitHandler,
        prompt: str = "",
        mode: str = DEFAULT_MODE,
        ratio: str,
        modes: Sequence[str],
        ratios: Sequence[str],
        max_prompt_length: int,
    ) -> None:
        super().__init__(
            title=messages.text(language, title_key), custom_id=custom_id, timeout=15 * 60
        )
        self._on_request = on_request
        self.prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
            placeholder=messages.text(language, "imagine.form.prompt_placeholder"),
            default=prompt[:MAX_TEXT_INPUT_LENGTH] or None,
            max_length=min(max_prompt_length, MAX_TEXT_INPUT_LENGTH),
            required=True,
        )
        self.mode: discord.ui.Select[Any] = discord.ui.Select(
            custom_id="mode",
            options=[
                discord.SelectOption(
                    label=messages.text(language, f"cmd.choice.mode_{value}"),
                    value=value,
                    default=value == mode,
                )
                for value in modes
            ],
        )
        self.ratio: discord.ui.Select[Any] = discord.ui.Select(
            custom_id="ratio",
            options=[
                discord.SelectOption(
                    label=messages.text(language, _RATIO_LABEL_KEYS[value]),
                    value=value,
                    default=value == ratio,
                )
                for value in ratios
            ],
        )
        for label_key, component in (
            ("imagine.form.prompt", self.prompt),
            ("imagine.form.mode", self.mode),
            ("imagine.form.ratio", self.ratio),
        ):
            self.add_item(
                discord.ui.Label(text=messages.text(language, label_key), component=component)
            )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        mode = self.mode.values[0] if self.mode.values else DEFAULT_MODE
        ratio = self.ratio.values[0] if self.ratio.values else ""
        await self._on_request(interaction, self.prompt.value, mode, ratio)
