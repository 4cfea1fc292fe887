"""/imagine: take the request, hand it to the domain, show progress, post the video.

This cog is also the domain's ``JobNotifier``: the poller calls it to show progress, deliver a
finished video, or explain a failure, long after the command itself has returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Services
from bot.errors import InvalidInput
from bot.jobs import JobState, NewJob
from bot.models import Job
from bot.service import Delivery, FailureReason, Progress
from bot.validation import ImageInput, validate_imagine
from bot.video import FetchedVideo
from cogs.errors import language_for, report_error
from cogs.render import (
    NO_PINGS,
    failure_embed,
    mention,
    only_pinging,
    progress_embed,
    result_embed,
)
from cogs.translator import text

if TYPE_CHECKING:
    from cogs.client import ImagineBot

log = logging.getLogger(__name__)

# Progress edits go through Discord's webhook rate limits; a few per job are plenty.
PROGRESS_EDIT_INTERVAL = 15.0
# Use the interaction's follow-up only while its token has comfortably this long to live.
TOKEN_SAFETY_MARGIN = timedelta(seconds=60)
INVALID_WEBHOOK_TOKEN = 50027
# How far back to look for a delivery that a crashed process may already have posted.
DELIVERY_LOOKBACK = 50

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
        cog = interaction.client.get_cog(ImagineCog.__cog_name__)
        assert isinstance(cog, ImagineCog)
        try:
            if self.action == "reroll":
                await cog.reroll(interaction, self.job_id)
            else:
                await cog.delete_result(interaction, self.job_id)
        except Exception as error:  # noqa: BLE001 - buttons share the commands' error path
            await report_error(
                interaction, error, cog.messages, cog.services.settings.credits_per_video
            )


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
    """/imagine and everything that happens to its job afterwards."""

    def __init__(self, bot: ImagineBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.messages = services.messages
        self._last_progress_edit: dict[str, tuple[float, str]] = {}
        self._acknowledgements = AcknowledgementsFirst()

    async def cog_load(self) -> None:
        self.services.service.attach_notifier(self)
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
            await self.job_progress(job, service.progress_of(job, "submitting"))
            outcome = await service.submit(job.id)
            if outcome.job.state == JobState.RUNNING:
                self.services.poller.wake()
                await self.job_progress(outcome.job, service.progress_of(outcome.job, "submitted"))
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

    # --- JobNotifier ------------------------------------------------------------------------

    def _interaction_webhook(self, job: Job) -> discord.Webhook | None:
        """The job's interaction webhook while its token is still good for a while."""
        expires_at = job.interaction_expires_at
        if job.interaction_token is None or expires_at is None or self.bot.application_id is None:
            return None
        if self.services.clock.now() + TOKEN_SAFETY_MARGIN >= expires_at:
            return None
        return discord.Webhook.partial(
            self.bot.application_id, job.interaction_token, client=self.bot
        )

    async def job_progress(self, job: Job, progress: Progress) -> None:
        webhook = self._interaction_webhook(job)
        if webhook is None:
            return
        now = self.services.clock.monotonic()
        last = self._last_progress_edit.get(job.id)
        if (
            last is not None
            and last[1] == progress.status
            and now - last[0] < PROGRESS_EDIT_INTERVAL
        ):
            return
        self._last_progress_edit[job.id] = (now, progress.status)
        embed = progress_embed(
            self.messages,
            job.locale,
            job,
            progress,
            dry_run=self.services.settings.dry_run,
            now=self.services.clock.now(),
        )
        await webhook.edit_message(
            "@original", content=None, embed=embed, allowed_mentions=NO_PINGS
        )

    async def job_failed(self, job: Job, reason: FailureReason, refunded: int) -> None:
        self._last_progress_edit.pop(job.id, None)
        embed = failure_embed(
            self.messages,
            job.locale,
            job,
            reason,
            refunded,
            timeout_minutes=self.services.settings.job_timeout_minutes,
        )
        webhook = self._interaction_webhook(job)
        if webhook is not None:
            try:
                await webhook.edit_message(
                    "@original", content=None, embed=embed, allowed_mentions=NO_PINGS
                )
            except discord.HTTPException as error:
                if not _token_is_gone(error):
                    raise
            else:
                return
        channel = await self._channel(job.channel_id)
        await channel.send(
            content=mention(job.member_id),
            embed=embed,
            allowed_mentions=only_pinging(job.member_id),
            nonce=_nonce(job, "failed"),
        )

    async def deliver(self, job: Job) -> Delivery:
        self._last_progress_edit.pop(job.id, None)
        channel = await self._channel(job.channel_id)
        if job.delivery_attempts > 1:
            posted = await self._find_delivery(channel, job)
            if posted is not None:
                log.info("job %s was already posted as message %s", job.id, posted.id)
                return Delivery(message_id=posted.id)
        async with contextlib.AsyncExitStack() as stack:
            videos: list[FetchedVideo] = [
                await stack.enter_async_context(
                    self.services.fetcher.fetch(url, index=index, max_bytes=job.upload_limit_bytes)
                )
                for index, url in enumerate(job.video_urls)
            ]
            message = await self._post_result(job, channel, videos)
        return Delivery(message_id=message.id if message is not None else None)

    async def _post_result(
        self, job: Job, channel: discord.abc.Messageable, videos: list[FetchedVideo]
    ) -> discord.Message | None:
        language = job.locale

        def files() -> list[discord.File]:
            # discord.py closes files after each send, so every attempt opens them anew.
            return [discord.File(v.path, filename=v.filename) for v in videos if v.path]

        links = [
            self.messages.text(language, "imagine.done.link", number=index + 1, url=video.url)
            for index, video in enumerate(videos)
            if video.path is None
        ]
        view = discord.ui.View(timeout=None)
        for action, key in (
            ("reroll", "imagine.button.reroll"),
            ("delete", "imagine.button.delete"),
        ):
            view.add_item(ResultButton(action, job.id, self.messages.text(language, key)))
        content = self.messages.text(
            language, "imagine.done.content", mention=mention(job.member_id)
        )
        embed = result_embed(self.messages, language, job, links)
        pings = only_pinging(job.member_id)
        webhook = self._interaction_webhook(job)
        if webhook is not None:
            try:
                message = await webhook.send(
                    content=content,
                    embed=embed,
                    files=files(),
                    view=view,
                    allowed_mentions=pings,
                    wait=True,
                )
            except discord.HTTPException as error:
                if not _token_is_gone(error):
                    raise
                log.info(
                    "interaction token of job %s is no longer valid; posting to the channel", job.id
                )
            else:
                await self._mark_progress_done(webhook, language)
                return message
        return await channel.send(
            content=content,
            embed=embed,
            files=files(),
            view=view,
            allowed_mentions=pings,
            nonce=_nonce(job, "video"),
        )

    async def _mark_progress_done(self, webhook: discord.Webhook, language: str) -> None:
        embed = discord.Embed(description=self.messages.text(language, "imagine.done.progress"))
        with contextlib.suppress(discord.HTTPException):
            await webhook.edit_message(
                "@original", content=None, embed=embed, allowed_mentions=NO_PINGS
            )

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        assert isinstance(channel, discord.abc.Messageable)
        return channel

    async def _find_delivery(
        self, channel: discord.abc.Messageable, job: Job
    ) -> discord.Message | None:
        """A message a previous attempt already posted for this job (it carries its buttons)."""
        marker = delete_custom_id(job.id)
        own_id = self.bot.user.id if self.bot.user else None
        try:
            async for message in channel.history(limit=DELIVERY_LOOKBACK):
                if message.author.id != own_id:
                    continue
                for row in message.components:
                    for child in getattr(row, "children", ()):
                        if getattr(child, "custom_id", None) == marker:
                            return message
        except discord.HTTPException:
            log.warning("could not read channel history to check job %s", job.id, exc_info=True)
        return None


def _token_is_gone(error: discord.HTTPException) -> bool:
    """The interaction's webhook no longer works: expired token, or the message is gone."""
    return error.code == INVALID_WEBHOOK_TOKEN or error.status in {401, 404}


def _nonce(job: Job, purpose: str) -> str:
    # Discord drops a second message with the same nonce, so a retried post can't double up.
    return f"{purpose[:1]}{job.id[:24]}"
