"""The domain's ``JobNotifier`` on Discord: progress edits, the finished video, failures.

The poller calls it long after the command returned, so everything it needs is in the stored
job: the interaction token while it lives (15 minutes), the channel after that.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import discord

from bot.app import Services
from bot.models import Job
from bot.service import Delivery, FailureReason, Progress
from bot.video import FetchedVideo
from cogs.render import (
    NO_PINGS,
    failure_embed,
    mention,
    only_pinging,
    progress_embed,
    result_embed,
)
from cogs.views import ResultButton, delete_custom_id

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


class DiscordNotifier:
    """Shows a job's progress, posts its video, or explains why there is none."""

    def __init__(self, bot: ImagineBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.messages = services.messages
        self._last_progress_edit: dict[str, tuple[float, str]] = {}

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
