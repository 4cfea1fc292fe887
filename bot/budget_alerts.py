"""Budget alerts: a message in a server's channel when its spend nears and reaches the budget.

An admin names a channel, an early-warning share ``threshold_percent`` (1-99, default 80) and,
if they want pings, a role. Two thresholds are watched: that share, and 100 % (nothing left).

What counts as spent: every credit no longer available, i.e. settled plus held by jobs in flight
(``budget - remaining``), because a reservation already takes its credits out of the budget.
The budget is this period's limit plus one-off credits. A budget of zero or less has nothing to
share out and never alerts.

When a threshold fires: ``claim_due_alerts`` runs after credits were committed (the caller
checks after each successful reservation). Each threshold the spend has reached is claimed at
most once per key (guild, period start, budget size, threshold), by inserting that key and
seeing whether the insert won; the database decides, so concurrent checks in several processes
send one message between them. Consequences:

* Spend jumping past both thresholds at once: both are claimed, only the 100 % alert is sent.
* Refunds lower the spend but not the key: a threshold crossed again is not announced again.
* A new period, or a budget of another size (a top-up, a new limit), arms both thresholds
  again: "once per period" would otherwise mean once ever for budgets that never reset.
* A threshold set (or lowered) below the spend already reached fires at the next check, since
  the admin wants to hear where the budget stands; but never after a higher threshold of the
  same key was announced, which would be stale news.
* A claim counts as sent: if posting the message then fails, it is not retried (no repeats).
* Turning alerts off deletes the settings but keeps the claims, so turning them on again in
  the same period does not repeat what was already announced.

Burn rate: credits per hour that went from available to used (reservations, less what refunds
and settlements gave back) over the last 24 hours, or since the period started if it started
less than 24 hours ago, divided by that span (at least an hour, so a burst in the first
minutes of a period does not read as a huge rate). At that rate the budget runs out at
``runs_out_at``; None when nothing was burnt or nothing is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.budget import BudgetView, LedgerKind
from bot.db import dialect_of, insert_ignore
from bot.models import BudgetAlertClaim, BudgetAlertSettings, LedgerEntry

DEFAULT_THRESHOLD_PERCENT = 80
MIN_THRESHOLD_PERCENT = 1
MAX_THRESHOLD_PERCENT = 99
EXHAUSTED_PERCENT = 100

BURN_WINDOW = timedelta(hours=24)
MIN_BURN_SPAN = timedelta(hours=1)

# The ledger kinds that move credits between available and used; grants, one-off credits and
# rollovers change the budget itself, not what was spent of it.
_USE_KINDS = (LedgerKind.RESERVE, LedgerKind.SETTLE, LedgerKind.REFUND)

AlertSettingsReason = Literal["threshold_out_of_range"]


class AlertSettingsRefused(Exception):
    """Alert settings an admin asked for were invalid; nothing was changed."""

    def __init__(self, reason: AlertSettingsReason, **params: int) -> None:
        super().__init__(reason)
        self.reason: AlertSettingsReason = reason
        # Figures the admin needs to correct the request, e.g. ``minimum`` and ``maximum``.
        self.params = params


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """A server's budget alert settings."""

    guild_id: int
    channel_id: int
    threshold_percent: int
    ping_role_id: int | None  # None: the message pings no one
    updated_by: int | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """One message to post in ``channel_id``: the budget crossed ``threshold_percent``."""

    guild_id: int
    channel_id: int
    ping_role_id: int | None
    threshold_percent: int  # the admin's early-warning share, or 100 when nothing is left
    budget: int  # this period's limit plus one-off credits
    used: int  # settled plus held by jobs in flight; above ``budget`` after an overcharge
    remaining: int
    burn_per_hour: float  # credits per hour, measured since ``burn_since``
    burn_since: datetime  # 24 hours ago, or the period's start if that is later
    runs_out_at: datetime | None  # at that rate; None when nothing is burnt or nothing is left
    resets_at: datetime | None  # None when the budget never resets

    @property
    def exhausted(self) -> bool:
        return self.threshold_percent >= EXHAUSTED_PERCENT


class BudgetAlertSink(Protocol):
    """Where budget alerts are posted: implemented on Discord in ``cogs``."""

    async def post(self, alert: BudgetAlert) -> None:
        """Post ``alert`` in its channel. Raises when it could not be posted."""
        ...


def check_threshold(threshold_percent: int) -> None:
    """Raise ``AlertSettingsRefused`` unless the early-warning share is one that can fire."""
    if not MIN_THRESHOLD_PERCENT <= threshold_percent <= MAX_THRESHOLD_PERCENT:
        raise AlertSettingsRefused(
            "threshold_out_of_range", minimum=MIN_THRESHOLD_PERCENT, maximum=MAX_THRESHOLD_PERCENT
        )


async def find_settings(session: AsyncSession, guild_id: int) -> AlertSettings | None:
    row = (
        await session.exec(
            select(BudgetAlertSettings)
            .where(BudgetAlertSettings.guild_id == guild_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    return None if row is None else _settings(row)


async def save_settings(
    session: AsyncSession,
    guild_id: int,
    *,
    channel_id: int,
    threshold_percent: int,
    ping_role_id: int | None,
    actor_id: int | None,
    now: datetime,
) -> AlertSettings:
    """Create or replace the guild's settings; its budget row must exist (foreign key)."""
    check_threshold(threshold_percent)
    values: dict[str, Any] = {
        "channel_id": channel_id,
        "threshold_percent": threshold_percent,
        "ping_role_id": ping_role_id,
        "updated_by": actor_id,
        "updated_at": now,
    }
    # One upsert, so two admins saving at once cannot trip over each other's insert.
    statement = (
        dialect_of(session)
        .insert(BudgetAlertSettings)
        .values(guild_id=guild_id, **values)
        .on_conflict_do_update(index_elements=["guild_id"], set_=values)
    )
    await session.exec(statement)
    return AlertSettings(guild_id=guild_id, **values)


async def delete_settings(session: AsyncSession, guild_id: int) -> bool:
    """Turn the guild's alerts off; False when they were not on."""
    deleted = await session.exec(
        delete(BudgetAlertSettings)
        .where(col(BudgetAlertSettings.guild_id) == guild_id)
        .execution_options(synchronize_session=False)
    )
    return deleted.rowcount > 0


async def claim_due_alerts(
    session: AsyncSession, settings: AlertSettings, budget: BudgetView, now: datetime
) -> list[BudgetAlert]:
    """Claim every threshold ``budget`` has reached that is not claimed yet; the alerts to send.

    ``budget`` must be the guild's current view (rolled into the current period), read in this
    transaction. At most one alert comes back: the highest threshold reached, if this call was
    the one to claim it.
    """
    total = budget.limit + budget.bonus
    if total <= 0:
        return []
    used = budget.spent + budget.reserved
    # Integer arithmetic: no rounding can fire a threshold a credit early or late.
    reached = sorted(
        threshold
        for threshold in {settings.threshold_percent, EXHAUSTED_PERCENT}
        if used * 100 >= threshold * total
    )
    if not reached:
        return []
    key = {
        "guild_id": settings.guild_id,
        "period_start": budget.period_start,
        "budget_credits": total,
    }
    claimed = set(
        (
            await session.exec(
                select(BudgetAlertClaim.threshold_percent).where(
                    BudgetAlertClaim.guild_id == settings.guild_id,
                    BudgetAlertClaim.period_start == budget.period_start,
                    BudgetAlertClaim.budget_credits == total,
                )
            )
        ).all()
    )
    highest = reached[-1]
    if highest in claimed:
        return []
    # Ascending, in every process alike, so racing claims queue on the same row first.
    won = [
        threshold
        for threshold in reached
        if threshold not in claimed
        and await insert_ignore(
            session,
            BudgetAlertClaim,
            {**key, "threshold_percent": threshold},
            {"claimed_at": now},
        )
    ]
    if highest not in won or any(threshold > highest for threshold in claimed):
        return []
    return [await _alert(session, settings, budget, highest, used=used, total=total, now=now)]


async def burn_per_hour(
    session: AsyncSession, guild_id: int, *, since: datetime, now: datetime
) -> float:
    """Credits per hour that went from available to used since ``since`` (never negative)."""
    change = (
        await session.exec(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.guild_id == guild_id,
                col(LedgerEntry.kind).in_(_USE_KINDS),
                col(LedgerEntry.created_at) >= since,
            )
        )
    ).one()
    burnt = max(0, -int(change))  # reservations are negative entries, what comes back positive
    span = max(now - since, MIN_BURN_SPAN)
    return burnt / (span / timedelta(hours=1))


def run_out_moment(remaining: int, burn_per_hour: float, now: datetime) -> datetime | None:
    """When ``remaining`` credits are gone at ``burn_per_hour``; None if never (or already)."""
    if remaining <= 0 or burn_per_hour <= 0:
        return None
    try:
        return now + timedelta(hours=remaining / burn_per_hour)
    except OverflowError:  # past the year 9999: as good as never
        return None


async def _alert(
    session: AsyncSession,
    settings: AlertSettings,
    budget: BudgetView,
    threshold_percent: int,
    *,
    used: int,
    total: int,
    now: datetime,
) -> BudgetAlert:
    burn_since = max(now - BURN_WINDOW, budget.period_start)
    rate = await burn_per_hour(session, settings.guild_id, since=burn_since, now=now)
    return BudgetAlert(
        guild_id=settings.guild_id,
        channel_id=settings.channel_id,
        ping_role_id=settings.ping_role_id,
        threshold_percent=threshold_percent,
        budget=total,
        used=used,
        remaining=budget.remaining,
        burn_per_hour=rate,
        burn_since=burn_since,
        runs_out_at=run_out_moment(budget.remaining, rate, now),
        resets_at=budget.resets_at,
    )


def _settings(row: BudgetAlertSettings) -> AlertSettings:
    return AlertSettings(
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        threshold_percent=row.threshold_percent,
        ping_role_id=row.ping_role_id,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )
