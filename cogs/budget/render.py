"""Budget embeds: /budget's views, history and usage, and a member's /credits."""

from __future__ import annotations

from datetime import datetime

import discord

from bot.budget import BudgetView, Period
from bot.budget_alerts import BudgetAlert
from bot.budget_service import CreditsOverview, HistoryPage
from bot.charts import ChartLabels, UsageChart, usage_summary
from bot.i18n import Messages, format_number
from bot.models import Job
from cogs.core.render import (
    EMBED_COLOUR,
    FAILURE_COLOUR,
    mention,
    message_link,
    shorten,
    timestamp,
)

USAGE_LINES = 20


def _signed(language: str, amount: int) -> str:
    number = format_number(language, abs(amount))
    return f"+{number}" if amount > 0 else (f"-{number}" if amount < 0 else "±0")


class BudgetRenderer:
    """Turns budget figures into embeds in the reader's language."""

    def __init__(self, messages: Messages, credits_per_video: int) -> None:
        self._messages = messages
        self._per_video = max(credits_per_video, 1)

    def _amount(self, language: str, value: int) -> str:
        return self._messages.text(
            language,
            "units.credits_videos",
            credits=value,
            videos=self._messages.videos(language, max(value, 0) // self._per_video),
        )

    def _resets(self, language: str, view: BudgetView) -> str:
        if view.resets_at is None:
            return self._messages.text(language, "budget.view.never")
        return timestamp(view.resets_at, "R")

    def _your_use(self, language: str, view: BudgetView) -> str | None:
        text = self._messages.text
        if view.member_used is None:
            return None
        if view.member_cap is not None:
            # What the member can still make: their cap, unless the server runs out first.
            left = min(max(view.member_cap - view.member_used, 0), view.remaining)
            return text(
                language,
                "budget.view.your_cap",
                used=view.member_used,
                cap=view.member_cap,
                videos=self._messages.videos(language, left // self._per_video),
            )
        return text(
            language,
            "budget.view.your_use",
            used=view.member_used,
            videos=self._messages.videos(language, view.member_used // self._per_video),
        )

    def budget(self, language: str, view: BudgetView) -> discord.Embed:
        """/budget show: every figure of the period, for admins."""
        text = self._messages.text
        embed = discord.Embed(title=text(language, "budget.view.title"), colour=EMBED_COLOUR)
        embed.add_field(
            name=text(language, "budget.view.remaining"),
            value=self._amount(language, view.remaining),
            inline=False,
        )
        embed.add_field(
            name=text(language, "budget.view.limit"),
            value=self._amount(language, view.limit + view.bonus),
        )
        embed.add_field(
            name=text(language, "budget.view.spent"), value=self._amount(language, view.spent)
        )
        embed.add_field(
            name=text(language, "budget.view.reserved"),
            value=self._amount(language, view.reserved),
        )
        embed.add_field(
            name=text(language, "budget.view.period"),
            value=text(language, f"budget.view.period_{view.period.value}"),
        )
        embed.add_field(
            name=text(language, "budget.view.resets"), value=self._resets(language, view)
        )
        if view.member_cap is not None:
            embed.add_field(
                name=text(language, "budget.view.member_cap"),
                value=self._amount(language, view.member_cap),
            )
        yours = self._your_use(language, view)
        if yours is not None:
            embed.add_field(name=text(language, "budget.view.yours"), value=yours, inline=False)
        if view.updated_by is not None:
            embed.add_field(
                name="\u200b",
                value=text(
                    language,
                    "budget.view.updated",
                    actor=mention(view.updated_by),
                    when=timestamp(view.updated_at),
                ),
                inline=False,
            )
        return embed

    def saved(self, language: str, view: BudgetView) -> discord.Embed:
        """/budget set: exactly what the budget now is, and from when."""
        embed = self.budget(language, view)
        total = view.limit + view.bonus
        amount = self._amount(language, total)
        if view.period is Period.NONE:
            summary = self._messages.text(language, "budget.set.saved_total", budget=amount)
        else:
            summary = self._messages.text(
                language,
                "budget.set.saved_periodic",
                budget=amount,
                per=self._messages.text(language, f"budget.set.per_{view.period.value}"),
                since=timestamp(view.period_start, "f"),
            )
        embed.description = summary
        return embed

    def added(self, language: str, view: BudgetView, amount: int) -> discord.Embed:
        """/budget add: the one-off change, and what this period's budget now is."""
        embed = self.budget(language, view)
        embed.description = self._messages.text(
            language,
            "budget.add.saved",
            amount=_signed(language, amount),
            budget=self._amount(language, view.limit + view.bonus),
        )
        return embed

    def history(self, language: str, page: HistoryPage) -> discord.Embed:
        text = self._messages.text
        lines = []
        for entry in page.entries:
            who_id = entry.actor_id or entry.member_id
            who = mention(who_id) if who_id else text(language, "budget.history.system")
            job = text(language, "budget.history.job", job=entry.job_id[:8]) if entry.job_id else ""
            lines.append(
                text(
                    language,
                    "budget.history.entry",
                    when=timestamp(entry.created_at, "f"),
                    kind=text(language, f"budget.history.kind_{entry.kind}"),
                    amount=_signed(language, entry.amount),
                    who=who,
                    job=job,
                )
            )
        embed = discord.Embed(
            title=text(language, "budget.history.title"),
            description="\n".join(lines) or text(language, "budget.history.empty"),
            colour=EMBED_COLOUR,
        )
        embed.set_footer(
            text=text(language, "budget.history.page", page=page.page + 1, pages=page.pages)
        )
        return embed

    def usage(self, language: str, rows: list[tuple[int, int]]) -> discord.Embed:
        text = self._messages.text
        lines = [
            text(
                language,
                "budget.usage.line",
                rank=rank,
                member=mention(member_id),
                credits=used,
                videos=self._messages.videos(language, used // self._per_video),
            )
            for rank, (member_id, used) in enumerate(rows[:USAGE_LINES], start=1)
        ]
        return discord.Embed(
            title=text(language, "budget.usage.title"),
            description="\n".join(lines) or text(language, "budget.usage.empty"),
            colour=EMBED_COLOUR,
        )

    def chart_labels(self, language: str) -> ChartLabels:
        text = self._messages.text
        day_format = text(language, "budget.usage.day_format")
        return ChartLabels(
            title=text(language, "budget.usage.chart_title"),
            credits_axis=text(language, "budget.usage.credits_axis"),
            per_day=text(language, "budget.usage.per_day"),
            spent_so_far=text(language, "budget.usage.spent_so_far"),
            budget=text(language, "budget.usage.budget"),
            format_day=lambda day: day.strftime(day_format),
            format_credits=lambda value: format_number(language, value),
        )

    def chart_summary(self, language: str, chart: UsageChart) -> str:
        """The chart's numbers in words, for members who cannot see the picture."""
        summary = usage_summary(chart)
        busiest = summary.busiest_day
        day, spent_that_day = busiest if busiest is not None else (chart.days[-1], 0)
        key = (
            "budget.usage.summary"
            if summary.budget is not None
            else "budget.usage.summary_unlimited"
        )
        return self._messages.text(
            language,
            key,
            spent=summary.total,
            budget=summary.budget or 0,
            day=chart.labels.format_day(day),
            credits=spent_that_day,
        )

    def alert(self, language: str, alert: BudgetAlert, now: datetime) -> discord.Embed:
        """A budget warning for the admins' channel."""
        text = self._messages.text
        if alert.exhausted:
            title = text(language, "budget.alert.title_exhausted")
        else:
            title = text(language, "budget.alert.title_threshold", percent=alert.threshold_percent)
        # The burn rate is measured over the last 24 hours, or since the period began.
        hours = max(1, round((now - alert.burn_since).total_seconds() / 3600))
        lines = [
            text(language, "budget.alert.left", left=max(alert.remaining, 0), budget=alert.budget)
        ]
        if alert.burn_per_hour > 0:
            lines.append(
                text(language, "budget.alert.burn", hours=hours, per_hour=alert.burn_per_hour)
            )
        else:
            lines.append(text(language, "budget.alert.idle", hours=hours))
        resets_at = alert.resets_at
        if alert.runs_out_at is not None and (resets_at is None or alert.runs_out_at < resets_at):
            lines.append(text(language, "budget.alert.runs_out", when=timestamp(alert.runs_out_at)))
        elif resets_at is not None and alert.burn_per_hour > 0 and not alert.exhausted:
            lines.append(text(language, "budget.alert.lasts", when=timestamp(resets_at)))
        if resets_at is not None:
            lines.append(text(language, "budget.alert.resets", when=timestamp(resets_at)))
        else:
            lines.append(text(language, "budget.alert.never_resets"))
        return discord.Embed(
            title=title,
            description="\n".join(lines),
            colour=FAILURE_COLOUR if alert.exhausted else EMBED_COLOUR,
        )

    def credits(self, language: str, overview: CreditsOverview) -> discord.Embed:
        """/credits: what a member may still make here, and their videos on the way."""
        text = self._messages.text
        view = overview.budget
        embed = discord.Embed(title=text(language, "credits.title"), colour=EMBED_COLOUR)
        embed.add_field(
            name=text(language, "budget.view.remaining"),
            value=self._amount(language, view.remaining),
        )
        embed.add_field(
            name=text(language, "budget.view.resets"), value=self._resets(language, view)
        )
        yours = self._your_use(language, view)
        if yours is not None:
            embed.add_field(name=text(language, "budget.view.yours"), value=yours, inline=False)
        lines = [self._job_line(language, job) for job in overview.active_jobs]
        hidden = overview.active_total - len(overview.active_jobs)
        if hidden > 0:
            lines.append(text(language, "credits.more", count=hidden))
        embed.add_field(
            name=text(language, "credits.in_progress"),
            value="\n".join(lines) or text(language, "credits.none_in_progress"),
            inline=False,
        )
        return embed

    def _job_line(self, language: str, job: Job) -> str:
        plain = job.prompt.replace("\n", " ").replace("[", "(").replace("]", ")")
        prompt = discord.utils.escape_markdown(shorten(plain, 60))
        if job.progress_message_id is not None:
            link = message_link(job.guild_id, job.channel_id, job.progress_message_id)
            prompt = f"[{prompt}]({link})"
        return self._messages.text(
            language,
            "credits.job",
            prompt=prompt,
            state=self._messages.text(language, f"credits.state_{job.state}"),
            since=timestamp(job.created_at, "R"),
        )
