"""The one path from any error in a command or button to a message the member can read."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable

import discord
from discord import app_commands

from bot.budget import BudgetChangeRefused, BudgetRefused
from bot.budget_alerts import AlertSettingsRefused
from bot.errors import UserFacingError
from bot.i18n import Messages
from cogs.core.locale import language_for
from cogs.core.render import FAILURE_COLOUR, NO_PINGS, timestamp

log = logging.getLogger(__name__)


def budget_refusal_text(
    messages: Messages, language: str, error: BudgetRefused, credits_per_video: int
) -> str:
    if error.reason == "member":
        text = messages.text(
            language,
            "budget.refused.member",
            remaining=error.member_remaining or 0,
            cap=error.member_cap or 0,
            cost=error.cost,
        )
    else:
        text = messages.text(
            language,
            "budget.refused.guild",
            remaining=error.remaining,
            videos=messages.videos(language, error.remaining // max(credits_per_video, 1)),
            cost=error.cost,
        )
    extra = (
        messages.text(language, "budget.refused.resets", when=timestamp(error.resets_at))
        if error.resets_at is not None
        else messages.text(language, "budget.refused.ask_admin")
    )
    return f"{text} {extra}"


# Errors discord.py raises before a command runs, each with a fixed message.
_CHECK_MESSAGES: tuple[tuple[type[Exception], str], ...] = (
    (app_commands.NoPrivateMessage, "error.guild_only"),
    (app_commands.MissingPermissions, "error.manage_server"),
)


def describe(
    error: BaseException, messages: Messages, language: str, credits_per_video: int
) -> str | None:
    """A readable text for a known error, or None for an unexpected one."""
    if isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError):
        error = error.__cause__ or error
    if isinstance(error, UserFacingError):
        return messages.text(language, error.key, **error.params)
    if isinstance(error, BudgetRefused):
        return budget_refusal_text(messages, language, error, credits_per_video)
    if isinstance(error, BudgetChangeRefused):
        return messages.text(language, f"budget.error.{error.reason}", **error.params)
    if isinstance(error, AlertSettingsRefused):
        return messages.text(language, f"budget.alerts.error.{error.reason}", **error.params)
    return _check_text(error, messages, language)


def _check_text(error: BaseException, messages: Messages, language: str) -> str | None:
    """The message for a check discord.py ran before the command, or None."""
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(error.missing_permissions)
        return messages.text(language, "error.bot_permissions", permissions=missing)
    for kind, key in _CHECK_MESSAGES:
        if isinstance(error, kind):
            return messages.text(language, key)
    return None


async def reply_privately(interaction: discord.Interaction, text: str, *, error: bool) -> None:
    """Answer only the member, whether or not the interaction was already acknowledged."""
    embed = discord.Embed(description=text, colour=FAILURE_COLOUR if error else None)
    if not interaction.response.is_done():
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=NO_PINGS
        )
        return
    if interaction.type is discord.InteractionType.application_command:
        # The public "thinking…" placeholder would otherwise show the refusal to everyone.
        try:
            await interaction.delete_original_response()
        except discord.HTTPException:
            log.debug("no original response to remove", exc_info=True)
    await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_PINGS)


class ErrorReporter:
    """Renders any error of a command or button for the member who caused it.

    Commands reach it through the command tree's ``on_error``, buttons through ``guard``.
    Unexpected errors are logged with an id that the member can quote.
    """

    def __init__(self, messages: Messages, credits_per_video: int) -> None:
        self._messages = messages
        self._credits_per_video = credits_per_video

    async def report(self, interaction: discord.Interaction, error: BaseException) -> None:
        language = language_for(interaction)
        text = describe(error, self._messages, language, self._credits_per_video)
        if text is None:
            error_id = uuid.uuid4().hex[:8]
            original = getattr(error, "original", None) or error
            log.error(
                "unexpected error %s in %s",
                error_id,
                interaction.command.qualified_name if interaction.command else interaction.type,
                exc_info=original,
            )
            text = self._messages.text(language, "error.unexpected", error_id=error_id)
        try:
            await reply_privately(interaction, text, error=True)
        except discord.HTTPException:
            log.warning("could not tell the member about an error", exc_info=True)

    async def guard(self, interaction: discord.Interaction, step: Awaitable[None]) -> None:
        """Await a button's step: an error in it reaches the member the way a command's does."""
        try:
            await step
        except Exception as error:  # noqa: BLE001 - every error is rendered, unexpected ones logged
            await self.report(interaction, error)
