"""The domain's ``JobNotifier`` on Discord: progress edits, the finished video, failures.

The poller calls it long after the command returned, so everything it needs is in the stored
job: the interaction token while it lives (15 minutes), the channel after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import discord

from bot.clock import Clock
from bot.i18n import Messages
from bot.jobs import InteractionTokens
from bot.logs import job_fields
from bot.metrics import Metrics
from bot.models import Job
from bot.service import Delivery, FailureReason, Progress, QueuePlace
from bot.transcode import VideoShrinker
from bot.video import FetchedVideo, VideoFetcher
from cogs.core.render import NO_PINGS, mention, only_pinging
from cogs.imagine.render import failure_embed, progress_embed, queue_embed, result_embed
from cogs.imagine.views import delete_custom_id, queue_view, result_view

log = logging.getLogger(__name__)

# Progress edits go through Discord's webhook rate limits; a few per job are plenty.
PROGRESS_EDIT_INTERVAL = 15.0
# Use the interaction's follow-up only while its token has comfortably this long to live.
TOKEN_SAFETY_MARGIN = timedelta(seconds=60)
# Discord's answers that mean the interaction's webhook will never work again.
INVALID_WEBHOOK_TOKEN = 50027
UNKNOWN_WEBHOOK = 10015
# How far back to look for a delivery that a crashed process may already have posted.
DELIVERY_LOOKBACK = 50
# How many jobs the notifier remembers as ended or as having a refused token.
JOBS_REMEMBERED = 10_000
# A video over the upload limit is still downloaded, up to this many times the limit, to be
# re-encoded to fit: the API's links expire, an attachment stays. Larger ones become links.
DOWNLOAD_LIMIT_FACTOR = 8


@dataclass(frozen=True, slots=True)
class NotifierOptions:
    """What the notifier's messages say about the bot's configuration."""

    dry_run: bool
    job_timeout_minutes: int


class DiscordNotifier:
    """Shows a job's progress, posts its video, or explains why there is none.

    Messages go through the interaction's webhook while its token works, and through the
    channel once it has expired or Discord refused it: the job's progress message is then
    edited as an ordinary message of the bot's, and a refused token is never tried again.
    """

    def __init__(
        self,
        bot: discord.Client,
        *,
        messages: Messages,
        fetcher: VideoFetcher,
        shrinker: VideoShrinker,
        tokens: InteractionTokens,
        clock: Clock,
        metrics: Metrics,
        options: NotifierOptions,
    ) -> None:
        self.bot = bot
        self.messages = messages
        self._fetcher = fetcher
        self._shrinker = shrinker
        self._tokens = tokens
        self._clock = clock
        self._metrics = metrics
        self._options = options
        self._last_progress_edit: dict[str, tuple[float, str]] = {}
        # One display at a time per job, in the order asked; none after the job ended.
        self._display_locks: dict[str, asyncio.Lock] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        # Jobs whose token Discord refused: a stale copy of the job must not try it again.
        self._refused_tokens: OrderedDict[str, None] = OrderedDict()

    def _interaction_webhook(self, job: Job) -> discord.Webhook | None:
        """The job's interaction webhook while its token is still good for a while."""
        expires_at = job.interaction_expires_at
        if job.interaction_token is None or expires_at is None or self.bot.application_id is None:
            return None
        if job.id in self._refused_tokens:
            return None
        if self._clock.now() + TOKEN_SAFETY_MARGIN >= expires_at:
            return None
        return discord.Webhook.partial(
            self.bot.application_id, job.interaction_token, client=self.bot
        )

    async def _forget_token(self, job: Job, error: discord.HTTPException) -> None:
        log.warning(
            "Discord refused the interaction token of job %s (%s %s); its messages now go "
            "through the channel",
            job.id,
            error.status,
            error.code,
            extra=job_fields(job),
        )
        _remember(self._refused_tokens, job.id)
        job.interaction_token = None
        job.interaction_expires_at = None
        await self._tokens.forget(job.id)

    async def _edit_progress_message(
        self, job: Job, embed: discord.Embed, view: discord.ui.View | None = None
    ) -> bool:
        """Replace the job's progress message with ``embed`` (and its buttons with ``view``'s,
        or none); False (logged) when it can't be.

        Showing progress is a courtesy: a display that fails never holds up the job.
        """
        webhook = self._interaction_webhook(job)
        if webhook is not None:
            try:
                await webhook.edit_message(
                    "@original", content=None, embed=embed, view=view, allowed_mentions=NO_PINGS
                )
            except discord.HTTPException as error:
                if not _token_is_gone(error):
                    return self._not_edited(job, error)
                await self._forget_token(job, error)
            else:
                return True
        if job.progress_message_id is None:
            return False
        message = self.bot.get_partial_messageable(job.channel_id).get_partial_message(
            job.progress_message_id
        )
        try:
            await message.edit(content=None, embed=embed, view=view, allowed_mentions=NO_PINGS)
        except discord.HTTPException as error:
            return self._not_edited(job, error)
        return True

    @staticmethod
    def _not_edited(job: Job, error: discord.HTTPException) -> bool:
        log.info("progress message of job %s not edited: %s", job.id, error, extra=job_fields(job))
        return False

    @contextlib.asynccontextmanager
    async def _displaying(self, job: Job, *, final: bool) -> AsyncIterator[bool]:
        """Serialize a job's displays; yields False for a progress update of an ended job."""
        lock = self._display_locks.setdefault(job.id, asyncio.Lock())
        async with lock:
            try:
                yield final or job.id not in self._ended
            finally:
                if final:
                    _remember(self._ended, job.id)
                    self._display_locks.pop(job.id, None)
                    self._last_progress_edit.pop(job.id, None)

    async def job_progress(self, job: Job, progress: Progress) -> None:
        now = self._clock.monotonic()
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
            dry_run=self._options.dry_run,
            now=self._clock.now(),
        )
        async with self._displaying(job, final=False) as current:
            if not current:
                return
            await self._edit_progress_message(job, embed)

    async def job_queued(self, job: Job, place: QueuePlace) -> None:
        embed = queue_embed(self.messages, job.locale, job, place, dry_run=self._options.dry_run)
        view = queue_view(job.id, self.messages.text(job.locale, "imagine.button.cancel"))
        async with self._displaying(job, final=False) as current:
            if current:
                await self._edit_progress_message(job, embed, view)

    async def job_failed(self, job: Job, reason: FailureReason, refunded: int) -> None:
        embed = failure_embed(
            self.messages,
            job.locale,
            job,
            reason,
            refunded,
            timeout_minutes=self._options.job_timeout_minutes,
        )
        async with self._displaying(job, final=True):
            if await self._edit_progress_message(job, embed):
                return
            # No progress message to turn into the notice: a new one, pinging the member.
            channel = await self._channel(job.channel_id)
            await channel.send(
                content=mention(job.member_id),
                embed=embed,
                allowed_mentions=only_pinging(job.member_id),
                nonce=_nonce(job, "failed"),
            )

    async def deliver(self, job: Job) -> Delivery:
        async with self._displaying(job, final=True):
            return await self._deliver(job)

    async def _deliver(self, job: Job) -> Delivery:
        channel = await self._channel(job.channel_id)
        if job.delivery_attempts > 1:
            posted = await self._find_delivery(channel, job)
            if posted is not None:
                log.info(
                    "job %s was already posted as message %s",
                    job.id,
                    posted.id,
                    extra=job_fields(job),
                )
                return Delivery(message_id=posted.id)
        download_limit = job.upload_limit_bytes * DOWNLOAD_LIMIT_FACTOR
        async with contextlib.AsyncExitStack() as stack:
            videos: list[FetchedVideo] = []
            for index, url in enumerate(job.video_urls):
                fetched = await stack.enter_async_context(
                    self._fetcher.fetch(url, index=index, max_bytes=download_limit)
                )
                videos.append(await self._fitted(job, fetched))
            message = await self._post_result(job, channel, videos)
        return Delivery(message_id=message.id if message is not None else None)

    async def _fitted(self, job: Job, video: FetchedVideo) -> FetchedVideo:
        """``video`` as it can be attached: as it is, re-encoded to fit, or (no path) a link."""
        limit = job.upload_limit_bytes
        if video.path is None or video.size is None or video.size <= limit:
            return video
        shrunk = await self._shrinker.shrink(video.path, max_bytes=limit, workdir=video.path.parent)
        if not shrunk.fitted or shrunk.path is None:
            log.info(
                "video of job %s (%d bytes) not re-encoded to fit %d bytes: %s; posting a link",
                job.id,
                video.size,
                limit,
                shrunk.detail,
                extra=job_fields(job),
            )
            return FetchedVideo(url=video.url, filename=video.filename, path=None, size=video.size)
        self._metrics.delivery_fallbacks.labels(kind="reencoded").inc()
        log.info(
            "video of job %s re-encoded from %d to %d bytes in %.1f s",
            job.id,
            video.size,
            shrunk.size or 0,
            shrunk.elapsed,
            extra=job_fields(job),
        )
        filename = video.filename.rsplit(".", 1)[0] + ".mp4"
        return FetchedVideo(url=video.url, filename=filename, path=shrunk.path, size=shrunk.size)

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
        view = result_view(
            job.id,
            reroll_label=self.messages.text(language, "imagine.button.reroll"),
            remix_label=self.messages.text(language, "imagine.button.remix"),
            delete_label=self.messages.text(language, "imagine.button.delete"),
        )
        content = self.messages.text(
            language, "imagine.done.content", mention=mention(job.member_id)
        )
        if links:
            self._metrics.delivery_fallbacks.labels(kind="link").inc()
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
                await self._forget_token(job, error)
            else:
                await self._mark_progress_done(job, language)
                return message
        self._metrics.delivery_fallbacks.labels(kind="channel").inc()
        message = await channel.send(
            content=content,
            embed=embed,
            files=files(),
            view=view,
            allowed_mentions=pings,
            nonce=_nonce(job, "video"),
        )
        await self._mark_progress_done(job, language)
        return message

    async def _mark_progress_done(self, job: Job, language: str) -> None:
        embed = discord.Embed(description=self.messages.text(language, "imagine.done.progress"))
        await self._edit_progress_message(job, embed)

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
            log.warning(
                "could not read channel history to check job %s",
                job.id,
                exc_info=True,
                extra=job_fields(job),
            )
        return None


def _remember(memory: OrderedDict[str, None], job_id: str) -> None:
    memory[job_id] = None
    while len(memory) > JOBS_REMEMBERED:
        memory.popitem(last=False)


def _token_is_gone(error: discord.HTTPException) -> bool:
    """Discord will never accept this interaction token again (expired, revoked, unknown)."""
    return error.status == 401 or error.code in {INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK}


def _nonce(job: Job, purpose: str) -> str:
    # Discord drops a second message with the same nonce, so a retried post can't double up.
    return f"{purpose[:1]}{job.id[:24]}"
