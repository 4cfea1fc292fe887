"""The messages of a job: progress, the finished video, and why there is none."""

from __future__ import annotations

from datetime import datetime

import discord

from bot.i18n import Messages
from bot.models import Job
from bot.service import FailureReason, Progress, QueuePlace
from cogs.core.render import EMBED_COLOUR, FAILURE_COLOUR, SUCCESS_COLOUR, shorten, timestamp

# The API's documented failure texts, each with a message that explains it to a member.
_API_FAILURE_KEYS = {
    "file type not supported": "imagine.failed.unsupported",
    "inappropriate content": "imagine.failed.inappropriate",
    "grok imagine build failed": "imagine.failed.build",
    "network error": "imagine.failed.network",
}


def failure_message(reason: FailureReason, error_text: str | None) -> tuple[str, dict[str, object]]:
    """The catalog key and placeholders that explain why a job ended without a video."""
    detail = (error_text or "").strip()
    if reason is FailureReason.GENERATION_FAILED:
        lowered = detail.lower()
        for prefix, key in _API_FAILURE_KEYS.items():
            if lowered.startswith(prefix):
                return key, {}
        return "imagine.failed.other", {"detail": detail or "?"}
    keys = {
        FailureReason.REJECTED: "imagine.failed.rejected",
        FailureReason.OUTCOME_UNKNOWN: "imagine.failed.outcome_unknown",
        FailureReason.SERVICE_BUSY: "imagine.failed.service_busy",
        FailureReason.SERVICE_UNAVAILABLE: "imagine.failed.service_unavailable",
        FailureReason.EXPIRED: "imagine.failed.expired",
        FailureReason.DELIVERY_FAILED: "imagine.failed.delivery",
        FailureReason.CANCELLED: "imagine.failed.cancelled",
    }
    params: dict[str, object] = {"detail": detail} if reason is FailureReason.REJECTED else {}
    return keys[reason], params


def status_text(messages: Messages, language: str, status: str) -> str:
    # The API's status strings are loosely documented; their case carries no meaning.
    key = f"imagine.status.{status.strip().lower()}"
    if messages.has(key):
        return messages.text(language, key)
    return messages.text(language, "imagine.status.other", status=shorten(status, 40))


def _request_fields(embed: discord.Embed, messages: Messages, language: str, job: Job) -> None:
    embed.add_field(
        name=messages.text(language, "imagine.progress.prompt"),
        value=shorten(job.prompt),
        inline=False,
    )
    mode = messages.text(language, f"cmd.choice.mode_{job.mode}")
    embed.add_field(name=messages.text(language, "imagine.progress.mode"), value=mode)
    embed.add_field(name=messages.text(language, "imagine.progress.ratio"), value=job.ratio)


def _waiting_embed(
    messages: Messages, language: str, job: Job, lines: list[str], *, dry_run: bool
) -> discord.Embed:
    """A job not finished yet: the request, its status ``lines``, what is reserved."""
    embed = discord.Embed(
        title=messages.text(language, "imagine.progress.title"), colour=EMBED_COLOUR
    )
    _request_fields(embed, messages, language, job)
    embed.add_field(
        name=messages.text(language, "imagine.progress.status"),
        value="\n".join(lines),
        inline=False,
    )
    # Discord already shows who used the command above the message.
    embed.set_footer(text=messages.text(language, "imagine.progress.footer", credits=job.cost))
    if dry_run:
        embed.description = messages.text(language, "imagine.progress.dry_run")
    return embed


def progress_embed(
    messages: Messages, language: str, job: Job, progress: Progress, *, dry_run: bool, now: datetime
) -> discord.Embed:
    lines = [status_text(messages, language, progress.status)]
    if progress.submitted_at is not None:
        lines.append(
            messages.text(
                language, "imagine.progress.started", when=timestamp(progress.submitted_at)
            )
        )
    if progress.estimated_ready_at is not None:
        if progress.estimated_ready_at > now:
            eta = timestamp(progress.estimated_ready_at)
            lines.append(messages.text(language, "imagine.progress.eta", when=eta))
        else:
            lines.append(messages.text(language, "imagine.progress.overdue"))
    return _waiting_embed(messages, language, job, lines, dry_run=dry_run)


def queue_embed(
    messages: Messages, language: str, job: Job, place: QueuePlace, *, dry_run: bool
) -> discord.Embed:
    """A job waiting for the rate budget: its place and when it should start."""
    lines = [
        messages.text(language, "imagine.queue.status"),
        # A relative timestamp counts down in every member's client: no edits needed for it.
        messages.text(
            language,
            "imagine.queue.place",
            position=place.position,
            when=timestamp(place.estimated_start, "R"),
        ),
        messages.text(language, "imagine.queue.cancel_hint"),
    ]
    return _waiting_embed(messages, language, job, lines, dry_run=dry_run)


def result_embed(messages: Messages, language: str, job: Job, links: list[str]) -> discord.Embed:
    embed = discord.Embed(
        title=messages.text(language, "imagine.done.title"), colour=SUCCESS_COLOUR
    )
    _request_fields(embed, messages, language, job)
    if links:
        embed.description = "\n".join(links)
    consumed = job.consumed_credits if job.consumed_credits is not None else job.cost
    mode = messages.text(language, f"cmd.choice.mode_{job.mode}")
    embed.set_footer(
        text=messages.text(
            language,
            "imagine.done.footer",
            credits=min(consumed, job.cost),
            mode=mode,
            ratio=job.ratio,
        )
    )
    return embed


def failure_embed(
    messages: Messages,
    language: str,
    job: Job,
    reason: FailureReason,
    refunded: int,
    *,
    timeout_minutes: int,
) -> discord.Embed:
    key, params = failure_message(reason, job.error_text)
    if reason is FailureReason.EXPIRED:
        params["minutes"] = timeout_minutes
    lines = [messages.text(language, key, **params)]
    if refunded:
        lines.append(messages.text(language, "imagine.failed.refunded", credits=refunded))
    if job.task_id and reason is not FailureReason.REJECTED:
        lines.append(messages.text(language, "imagine.failed.support", task_id=job.task_id))
    embed = discord.Embed(
        title=messages.text(language, "imagine.failed.title"),
        description="\n\n".join(lines),
        colour=FAILURE_COLOUR,
    )
    embed.add_field(
        name=messages.text(language, "imagine.progress.prompt"), value=shorten(job.prompt, 300)
    )
    return embed
