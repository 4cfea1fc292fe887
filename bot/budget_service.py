"""What members and admins do with a server's credits, each in one transaction.

The Discord commands call these and render the result; they never open a session themselves.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date

from bot import budget_alerts
from bot.budget import Budgets, BudgetView
from bot.budget_alerts import (
    DEFAULT_THRESHOLD_PERCENT,
    AlertSettings,
    BudgetAlert,
    BudgetAlertSink,
)
from bot.clock import Clock
from bot.db import Database
from bot.jobs import JobStore
from bot.models import Job, LedgerEntry

log = logging.getLogger(__name__)

# A member's jobs listed by /credits; more than this are summarized as a count.
ACTIVE_JOBS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class CreditsOverview:
    """What a member sees with /credits: the server's budget, their use, their jobs."""

    budget: BudgetView
    active_jobs: list[Job]
    active_total: int


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """This period's spend per member and day (UTC), with the budget it is counted against."""

    budget: BudgetView
    spend: dict[tuple[int, date], int]
    today: date


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[LedgerEntry]
    page: int  # zero-based, clamped to the pages there are
    pages: int


class BudgetService:
    """Reads and changes of server budgets, for members and admins."""

    def __init__(
        self,
        *,
        database: Database,
        budgets: Budgets,
        jobs: JobStore,
        clock: Clock,
        alert_sink: BudgetAlertSink | None = None,
    ) -> None:
        self._database = database
        self._budgets = budgets
        self._jobs = jobs
        self._clock = clock
        self._alert_sink = alert_sink

    async def overview(self, guild_id: int, member_id: int) -> CreditsOverview:
        async with self._database.transaction() as session:
            budget = await self._budgets.view(session, guild_id, member_id)
            jobs, total = await self._jobs.active_for_member(
                session, guild_id, member_id, limit=ACTIVE_JOBS_SHOWN
            )
        return CreditsOverview(budget=budget, active_jobs=jobs, active_total=total)

    async def view(self, guild_id: int, member_id: int | None = None) -> BudgetView:
        async with self._database.transaction() as session:
            return await self._budgets.view(session, guild_id, member_id)

    async def set_budget(
        self,
        guild_id: int,
        *,
        credits: int | None,  # noqa: A002 - the option's name
        period: str | None,
        per_member: int | None,
        actor_id: int,
        may_raise: bool,
    ) -> BudgetView:
        """``/budget set``: replace this period's budget; ``per_member`` 0 removes the cap."""
        async with self._database.transaction() as session:
            return await self._budgets.set_budget(
                session,
                guild_id,
                credits=credits,
                period=period,
                member_cap=per_member or None,
                clear_member_cap=per_member == 0,
                actor_id=actor_id,
                may_raise=may_raise,
            )

    async def add_credits(
        self, guild_id: int, amount: int, *, actor_id: int, may_raise: bool
    ) -> BudgetView:
        async with self._database.transaction() as session:
            return await self._budgets.add_credits(
                session, guild_id, amount, actor_id=actor_id, may_raise=may_raise
            )

    async def history(self, guild_id: int, page: int, *, page_size: int) -> HistoryPage:
        async with self._database.transaction() as session:
            entries, total = await self._budgets.history(
                session, guild_id, limit=page_size, offset=page * page_size
            )
            pages = max(1, math.ceil(total / page_size))
            if page >= pages:  # the ledger is append-only, so only a stale page can be past it
                page = pages - 1
                entries, _ = await self._budgets.history(
                    session, guild_id, limit=page_size, offset=page * page_size
                )
        return HistoryPage(entries=entries, page=page, pages=pages)

    async def usage(self, guild_id: int) -> list[tuple[int, int]]:
        async with self._database.transaction() as session:
            return await self._budgets.usage(session, guild_id)

    async def daily_usage(self, guild_id: int) -> DailyUsage:
        """For the /budget usage chart: who spent what on which day of this period."""
        async with self._database.transaction() as session:
            budget = await self._budgets.view(session, guild_id)
            spend = await self._budgets.spend_by_day(session, guild_id, budget.period_start)
        return DailyUsage(budget=budget, spend=spend, today=self._clock.now().date())

    # --- budget alerts (see bot.budget_alerts) ------------------------------------------------

    async def configure_alerts(
        self,
        guild_id: int,
        *,
        channel_id: int,
        at_percent: int = DEFAULT_THRESHOLD_PERCENT,
        ping_role_id: int | None = None,
        actor_id: int,
    ) -> AlertSettings:
        """``/budget alerts``: warn in ``channel_id`` at ``at_percent`` and at 100 %.

        Replaces earlier settings. Raises ``AlertSettingsRefused`` for a share outside 1-99.
        """
        budget_alerts.check_threshold(at_percent)
        async with self._database.transaction() as session:
            # The settings hang off the guild's budget row, created here on first sight.
            await self._budgets.view(session, guild_id)
            return await budget_alerts.save_settings(
                session,
                guild_id,
                channel_id=channel_id,
                threshold_percent=at_percent,
                ping_role_id=ping_role_id,
                actor_id=actor_id,
                now=self._clock.now(),
            )

    async def disable_alerts(self, guild_id: int) -> bool:
        """``/budget alerts off``; False when alerts were not on."""
        async with self._database.transaction() as session:
            return await budget_alerts.delete_settings(session, guild_id)

    async def alert_settings(self, guild_id: int) -> AlertSettings | None:
        async with self._database.transaction() as session:
            return await budget_alerts.find_settings(session, guild_id)

    async def alerts_due(self, guild_id: int) -> list[BudgetAlert]:
        """The budget alerts to post now, each claimed for the caller alone; usually none.

        Call it after credits were committed (a reservation). Without alert settings it costs
        one primary-key read.
        """
        async with self._database.transaction() as session:
            settings = await budget_alerts.find_settings(session, guild_id)
            if settings is None:
                return []
            budget = await self._budgets.view(session, guild_id)
            return await budget_alerts.claim_due_alerts(
                session, settings, budget, self._clock.now()
            )

    async def announce_alerts(self, guild_id: int) -> None:
        """Post the alerts that are due after credits were spent. Never raises: an alert is
        claimed before it is posted, so one that cannot be posted is logged and dropped."""
        if self._alert_sink is None:
            return
        try:
            due = await self.alerts_due(guild_id)
        except Exception:
            log.exception("budget alerts of guild %s could not be checked", guild_id)
            return
        for alert in due:
            try:
                await self._alert_sink.post(alert)
            except Exception as error:  # noqa: BLE001 - the admins' channel, not our failure
                log.warning(
                    "budget alert (%d %%) for guild %s not posted in channel %s: %s",
                    alert.threshold_percent,
                    guild_id,
                    alert.channel_id,
                    error,
                )
