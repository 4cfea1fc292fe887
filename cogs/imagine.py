"""/imagine and the result buttons: take the request, hand it to the domain.

What happens to the job afterwards reaches Discord through ``cogs.delivery.DiscordNotifier``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Services
from bot.errors import InvalidInput
from bot.jobs import JobState, NewJob
from bot.validation import ImageInput, validate_imagine
from cogs.delivery import DiscordNotifier
from cogs.errors import language_for
from cogs.translator import text

if TYPE_CHECKING:
    from cogs.client import ImagineBot

log = logging.getLogger(__name__)

RATIO_CHOICES = [
    app_commands.Choice(name=text("16:9 landscape", "cmd.choice.ratio_landscape"), value="16:9"),
    app_commands.Choice(name=text("9:16 portrait", "cmd.choice.ratio_portrait"), value="9:16"),
    app_commands.Choice(name=text("1:1 square", "cmd.choice.ratio_square"), value="1:1"),
    app_commands.Choice(name=text("2:3 tall", "cmd.choice.ratio_tall"), value="2:3"),
    app_commands.Choice(name=text("3:2 wide", "cmd.choice.ratio_wide"), value="3:2"),
]
MODE_CHOICES = [
    app_commands.Choice(name=text("fun", "cmd.choice.mode_fun"), value="fun"),
    app_commands.Choice(name=text("normal", "cmd.choice.mode_normal"), value="normal"),
    app_commands.Choice(name=text("spicy", "cmd.choice.mode_spicy"), value="spicy"),
]


class AcknowledgementsFirst:
    """Work that follows a defer waits while other interactions still await their defer.

    In a burst, every command's budget, store and API work would otherwise run between the
    later commands' events and their acknowledgements, which Discord wants within 3 s.
    """

    # Never hold work back longer than this, even under an endless stream of commands.
    MAX_WAIT = 0.5

    def __init__(self) -> None:
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def acknowledging(self) -> AsyncIterator[None]:
        self._pending += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def wait_turn(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.MAX_WAIT):
                await self._idle.wait()


def _is_nsfw(channel: object) -> bool:
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def _image_inputs(attachments: list[discord.Attachment | None]) -> list[ImageInput]:
    return [
        ImageInput(
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            url=attachment.url,
        )
        for attachment in attachments
        if attachment is not None
    ]


class ImagineCog(commands.Cog, name="Imagine"):
    """/imagine, Reroll and Delete."""

    def __init__(self, bot: ImagineBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.messages = services.messages
        self.notifier = DiscordNotifier(bot, services)
        self._acknowledgements = AcknowledgementsFirst()

    async def cog_load(self) -> None:
        self.services.service.attach_notifier(self.notifier)
        self.services.poller.start()

    async def cog_unload(self) -> None:
        await self.services.poller.stop()

    # --- the command ------------------------------------------------------------------------

    @app_commands.command(
        name=text("imagine", "cmd.imagine.name"),
        description=text("Make a short video from a text prompt", "cmd.imagine.description"),
    )
    @app_commands.rename(
        prompt=text("prompt", "cmd.imagine.prompt_name"),
        ratio=text("ratio", "cmd.imagine.ratio_name"),
        mode=text("mode", "cmd.imagine.mode_name"),
        image=text("image", "cmd.imagine.image_name"),
        image2=text("image2", "cmd.imagine.image2_name"),
        image3=text("image3", "cmd.imagine.image3_name"),
    )
    @app_commands.describe(
        prompt=text("What the video should show", "cmd.imagine.prompt_description"),
        ratio=text("Aspect ratio (default 16:9)", "cmd.imagine.ratio_description"),
        mode=text(
            "Style (default normal; spicy only in age-restricted channels)",
            "cmd.imagine.mode_description",
        ),
        image=text("Optional starting image (PNG, JPEG or WebP)", "cmd.imagine.image_description"),
        image2=text("Optional second image", "cmd.imagine.image2_description"),
        image3=text("Optional third image", "cmd.imagine.image3_description"),
    )
    @app_commands.choices(ratio=RATIO_CHOICES, mode=MODE_CHOICES)
    @app_commands.guild_only()
    async def imagine(  # noqa: PLR0917 - discord.py maps options to positional parameters
        self,
        interaction: discord.Interaction,
        prompt: str,
        ratio: str = "16:9",
        mode: str = "normal",
        image: discord.Attachment | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
    ) -> None:
        await self._acknowledge(interaction)
        settings = self.services.settings
        request = validate_imagine(
            prompt,
            mode=mode,
            ratio=ratio,
            images=_image_inputs([image, image2, image3]),
            channel_is_nsfw=_is_nsfw(interaction.channel),
            max_prompt_length=settings.max_prompt_length,
            max_image_bytes=settings.max_image_bytes,
        )
        await self._start_job(
            interaction,
            prompt=request.prompt,
            mode=request.mode,
            ratio=request.ratio,
            image_urls=request.images,
            reroll_of=None,
        )

    async def _acknowledge(self, interaction: discord.Interaction) -> None:
        """Defer first: everything else may take longer than Discord's three seconds."""
        async with self._acknowledgements.acknowledging():
            await interaction.response.defer(thinking=True)
        await self._acknowledgements.wait_turn()

    async def _start_job(
        self,
        interaction: discord.Interaction,
        *,
        prompt: str,
        mode: str,
        ratio: str,
        image_urls: tuple[str, ...],
        reroll_of: str | None,
    ) -> None:
        assert interaction.guild_id is not None
        assert interaction.channel_id is not None
        service = self.services.service
        new = NewJob(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            member_id=interaction.user.id,
            locale=language_for(interaction),
            prompt=prompt,
            mode=mode,
            ratio=ratio,
            image_urls=image_urls,
            interaction_id=interaction.id,
            interaction_token=interaction.token,
            interaction_expires_at=interaction.expires_at,
            upload_limit_bytes=interaction.filesize_limit,
            cost=self.services.settings.credits_per_video,
            reroll_of=reroll_of,
        )
        job = await service.start(new)
        # From here on the credits are reserved and the job is in the store: whatever goes
        # wrong now, the poller takes the job over, so the member is never told it failed.
        try:
            await self.notifier.job_progress(job, service.progress_of(job, "submitting"))
            outcome = await service.submit(job.id)
            if outcome.job.state == JobState.RUNNING:
                self.services.poller.wake()
                await self.notifier.job_progress(
                    outcome.job, service.progress_of(outcome.job, "submitted")
                )
        except Exception:
            log.exception("job %s hit a problem after it was saved; the poller takes over", job.id)

    # --- buttons ----------------------------------------------------------------------------

    async def reroll(self, interaction: discord.Interaction, job_id: str) -> None:
        await self._acknowledge(interaction)
        async with self.services.database.transaction() as session:
            original = await self.services.jobs.get(session, job_id)
        if original is None or original.guild_id != interaction.guild_id:
            raise InvalidInput("imagine.reroll.unavailable")
        await self._start_job(
            interaction,
            prompt=original.prompt,
            mode=original.mode,
            ratio=original.ratio,
            image_urls=tuple(original.image_urls),
            reroll_of=original.id,
        )

    async def delete_result(self, interaction: discord.Interaction, job_id: str) -> None:
        language = language_for(interaction)
        async with self.services.database.transaction() as session:
            job = await self.services.jobs.get(session, job_id)
        # Discord sends the member's resolved permissions with every interaction.
        permissions = interaction.permissions
        is_admin = (
            permissions.manage_guild or permissions.manage_messages or permissions.administrator
        )
        is_owner = interaction.user.id in self.services.settings.owner_ids
        if job is None or not (job.member_id == interaction.user.id or is_admin or is_owner):
            await interaction.response.send_message(
                self.messages.text(language, "imagine.delete.not_allowed"), ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        if interaction.message is not None:
            with contextlib.suppress(discord.NotFound):  # someone else deleted it first
                await interaction.message.delete()
        await interaction.followup.send(
            self.messages.text(language, "imagine.delete.done"), ephemeral=True
        )
