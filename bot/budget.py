"""Server credit budgets: reserve before submit, settle or refund after, all on a ledger.

Every method works inside the caller's open transaction, so a reservation and the job it pays
for commit (or roll back) together. Reservations and releases change balances only through
conditional UPDATEs that the database evaluates atomically; admin changes and rollovers, which
need the old balance for their ledger entry, compute from a row their transaction holds locked.

Invariants, per guild (the test suite checks them after every test):
    balance == sum(ledger.amount)
    balance == limit + bonus - spent - reserved
    reserved == sum(amount of held reservations) >= 0
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.db import insert_ignore
from bot.models import GuildBudget, LedgerEntry, MemberUsage, Reservation

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Period(StrEnum):
    NONE = "none"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class LedgerKind(StrEnum):
    GRANT = "grant"  # the limit was set (or the default budget given)
    ADJUST = "adjust"  # one-off credits added or taken
    RESERVE = "reserve"
    SETTLE = "settle"
    REFUND = "refund"
    ROLLOVER = "rollover"


class ReservationState(StrEnum):
    HELD = "held"
    SETTLED = "settled"
    REFUNDED = "refunded"


def period_start(period: Period, now: datetime) -> datetime:
    """The start (UTC) of the calendar period containing ``now``; the epoch for NONE."""
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    match period:
        case Period.NONE:
            return EPOCH
        case Period.DAILY:
            return midnight
        case Period.WEEKLY:
            return midnight - timedelta(days=midnight.weekday())
        case Period.MONTHLY:
            return midnight.replace(day=1)


def next_reset(period: Period, start: datetime) -> datetime | None:
    """When the period that contains ``start`` ends; None when budgets never reset."""
    aligned = period_start(period, start)
    match period:
        case Period.NONE:
            return None
        case Period.DAILY:
            return aligned + timedelta(days=1)
        case Period.WEEKLY:
            return aligned + timedelta(days=7)
        case Period.MONTHLY:
            days_in_month = calendar.monthrange(aligned.year, aligned.month)[1]
            return aligned + timedelta(days=days_in_month)


@dataclass(frozen=True, slots=True)
class BudgetView:
    """A guild's budget as admins and members see it."""

    guild_id: int
    limit: int
    bonus: int
    spent: int
    reserved: int
    remaining: int
    period: Period
    period_start: datetime
    resets_at: datetime | None
    member_cap: int | None
    member_used: int | None
    updated_by: int | None
    updated_at: datetime


class BudgetRefused(Exception):
    """A reservation did not fit; carries what the member needs to hear."""

    def __init__(
        self,
        reason: Literal["guild", "member"],
        *,
        cost: int,
        remaining: int,
        member_remaining: int | None,
        resets_at: datetime | None,
        member_cap: int | None = None,
    ) -> None:
        super().__init__(f"{reason} budget refused {cost} credits ({remaining} remaining)")
        self.reason = reason
        self.cost = cost
        self.remaining = remaining
        self.member_remaining = member_remaining
        self.member_cap = member_cap
        self.resets_at = resets_at


BudgetChangeReason = Literal[
    "negative_limit",
    "cap_above_limit",
    "below_reserved",
    "raise_not_allowed",
    "unknown_period",
    "nothing_to_change",
]


class BudgetChangeRefused(Exception):
    """An admin's change was invalid or not theirs to make; nothing was changed."""

    def __init__(self, reason: BudgetChangeReason, **params: int) -> None:
        super().__init__(reason)
        self.reason: BudgetChangeReason = reason
        # Figures the admin needs to correct the request, e.g. ``max_deduct``.
        self.params = params


class Budgets:
    """Budget operations; each takes the session of the caller's open transaction."""

    def __init__(self, *, default_guild_credits: int, clock: Clock) -> None:
        self._default_guild_credits = default_guild_credits
        self._clock = clock

    async def view(
        self, session: AsyncSession, guild_id: int, member_id: int | None = None
    ) -> BudgetView:
        budget = await self._touch(session, guild_id)
        member_used = None
        if member_id is not None:
            member_used = await self._member_used(session, budget, member_id)
        return _view(budget, member_used)

    async def reserve(
        self, session: AsyncSession, *, guild_id: int, member_id: int, cost: int, job_id: str
    ) -> None:
        """Hold ``cost`` credits for ``job_id`` or raise ``BudgetRefused``; changes nothing then."""
        if cost <= 0:
            raise ValueError(f"cost must be positive, not {cost}")
        await self._touch(session, guild_id)
        # The period and cap come back from the debited row itself, so they are the ones in
        # force at the moment of the debit even if an admin changed them a moment before.
        debited = (
            await session.exec(
                update(GuildBudget)
                .where(col(GuildBudget.guild_id) == guild_id, col(GuildBudget.balance) >= cost)
                .values(balance=GuildBudget.balance - cost, reserved=GuildBudget.reserved + cost)
                .returning(col(GuildBudget.period_start), col(GuildBudget.member_cap))
                .execution_options(synchronize_session=False)
            )
        ).first()
        if debited is None:
            budget = await self._load(session, guild_id)
            member_remaining = None
            if budget.member_cap is not None:
                used = await self._member_used(session, budget, member_id)
                member_remaining = max(0, budget.member_cap - used)
            raise BudgetRefused(
                "guild",
                cost=cost,
                remaining=max(0, budget.balance),
                member_remaining=member_remaining,
                resets_at=_resets_at(budget),
            )

        current_start, member_cap = debited
        await insert_ignore(
            session,
            MemberUsage,
            {"guild_id": guild_id, "member_id": member_id, "period_start": current_start},
            {"used": 0},
        )
        counted = (
            update(MemberUsage)
            .where(
                col(MemberUsage.guild_id) == guild_id,
                col(MemberUsage.member_id) == member_id,
                col(MemberUsage.period_start) == current_start,
            )
            .values(used=MemberUsage.used + cost)
        )
        if member_cap is not None:
            counted = counted.where(col(MemberUsage.used) + cost <= member_cap)
        if (await session.exec(counted.execution_options(synchronize_session=False))).rowcount == 0:
            # Undo the guild debit here rather than trusting the caller to roll back: a caller
            # that catches the refusal and commits must not lose credits.
            await session.exec(
                update(GuildBudget)
                .where(col(GuildBudget.guild_id) == guild_id)
                .values(balance=GuildBudget.balance + cost, reserved=GuildBudget.reserved - cost)
                .execution_options(synchronize_session=False)
            )
            budget = await self._load(session, guild_id)
            used = await self._member_used(session, budget, member_id)
            raise BudgetRefused(
                "member",
                cost=cost,
                remaining=max(0, budget.balance),
                member_remaining=max(0, (member_cap or 0) - used),
                resets_at=_resets_at(budget),
                member_cap=member_cap,
            )

        now = self._clock.now()
        session.add(
            Reservation(
                job_id=job_id,
                guild_id=guild_id,
                member_id=member_id,
                amount=cost,
                period_start=current_start,
                state=ReservationState.HELD,
                created_at=now,
            )
        )
        self._append(
            session, guild_id, LedgerKind.RESERVE, -cost, member_id=member_id, job_id=job_id
        )
        await session.flush()

    async def settle(self, session: AsyncSession, job_id: str, consumed: int) -> int:
        """Close a held reservation with what the API consumed; returns the credits given back.

        Idempotent: a reservation that is no longer held is left alone and 0 is returned.
        """
        if consumed < 0:
            raise ValueError(f"consumed must not be negative, not {consumed}")
        reservation = await self._release(session, job_id, ReservationState.SETTLED, consumed)
        if reservation is None:
            return 0
        # Balance change; negative if the API charged more than was held, which is recorded
        # as spent because the operator paid it.
        returned = reservation.amount - consumed
        await self._apply_release(
            session, reservation, returned=returned, spent=consumed, kind=LedgerKind.SETTLE
        )
        return max(0, returned)

    async def refund(self, session: AsyncSession, job_id: str) -> int:
        """Give a held reservation back in full; idempotent (0 when no longer held)."""
        reservation = await self._release(session, job_id, ReservationState.REFUNDED, None)
        if reservation is None:
            return 0
        await self._apply_release(
            session, reservation, returned=reservation.amount, spent=0, kind=LedgerKind.REFUND
        )
        return reservation.amount

    async def set_budget(
        self,
        session: AsyncSession,
        guild_id: int,
        *,
        credits: int | None = None,  # noqa: A002  (the name the admin command uses)
        period: Period | str | None,  # a str is checked here: unknown ones are refused
        member_cap: int | None,
        clear_member_cap: bool = False,
        actor_id: int,
        may_raise: bool,
    ) -> BudgetView:
        """Change the budget, the period and/or the member cap; None leaves a setting as it is.

        ``credits`` replaces this period's budget: afterwards limit + bonus is exactly
        ``credits``, so one-off credits added earlier in the period are folded into the new
        limit (the ledger keeps their entry). A period change starts a fresh period now.
        """
        if credits is not None and credits < 0:
            raise BudgetChangeRefused("negative_limit")
        if member_cap is not None and member_cap < 0:
            raise BudgetChangeRefused("negative_limit")
        try:
            new_period = None if period is None else Period(period)
        except ValueError:
            raise BudgetChangeRefused("unknown_period") from None
        if credits is None and new_period is None and member_cap is None and not clear_member_cap:
            raise BudgetChangeRefused("nothing_to_change")

        await self._touch(session, guild_id)
        budget = await self._load(session, guild_id, lock=True)
        limit = budget.limit_credits if credits is None else credits
        if member_cap is not None:
            checked_cap = member_cap
        else:
            checked_cap = None if clear_member_cap else budget.member_cap
        if checked_cap is not None and checked_cap > limit:
            # A cap above the (new or kept) limit, or a lower limit under the cap in force.
            raise BudgetChangeRefused("cap_above_limit")
        now = self._clock.now()
        values: dict[str, Any] = {"updated_by": actor_id, "updated_at": now}
        if clear_member_cap:
            values["member_cap"] = None
        elif member_cap is not None:
            values["member_cap"] = member_cap
        spent, bonus = budget.spent, budget.bonus
        if credits is not None:
            # The admin stated the whole budget for this period: the top-up is part of it now.
            bonus = 0
            values |= {"limit_credits": credits, "bonus": 0}
        if new_period is not None and new_period != budget.period:
            # A fresh period starting now, so usage counted under the old period stays there.
            spent = bonus = 0
            values |= {"period": new_period, "period_start": now, "spent": 0, "bonus": 0}
        new_balance = limit + bonus - spent - budget.reserved
        if new_balance > budget.balance and not may_raise:
            raise BudgetChangeRefused("raise_not_allowed")
        values["balance"] = new_balance
        await self._update_locked(session, guild_id, values)
        self._append(
            session,
            guild_id,
            LedgerKind.GRANT,
            new_balance - budget.balance,
            actor_id=actor_id,
            note=_change_note(credits, new_period, member_cap, clear_member_cap=clear_member_cap),
        )
        await session.flush()
        return await self.view(session, guild_id)

    async def add_credits(
        self, session: AsyncSession, guild_id: int, amount: int, *, actor_id: int, may_raise: bool
    ) -> BudgetView:
        """Add (or, negative, take) one-off credits for this period, never below what is in use."""
        if amount > 0 and not may_raise:
            raise BudgetChangeRefused("raise_not_allowed")
        await self._touch(session, guild_id)
        changed = await session.exec(
            update(GuildBudget)
            .where(col(GuildBudget.guild_id) == guild_id, col(GuildBudget.balance) + amount >= 0)
            .values(
                balance=GuildBudget.balance + amount,
                bonus=GuildBudget.bonus + amount,
                updated_by=actor_id,
                updated_at=self._clock.now(),
            )
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount == 0:
            budget = await self._load(session, guild_id)
            raise BudgetChangeRefused("below_reserved", max_deduct=max(0, budget.balance))
        self._append(
            session,
            guild_id,
            LedgerKind.ADJUST,
            amount,
            actor_id=actor_id,
            note=f"{amount:+d} credits",
        )
        await session.flush()
        return await self.view(session, guild_id)

    async def history(
        self, session: AsyncSession, guild_id: int, *, limit: int = 10, offset: int = 0
    ) -> tuple[list[LedgerEntry], int]:
        """Ledger entries, newest first, and how many there are in all."""
        entries = await session.exec(
            select(LedgerEntry)
            .where(LedgerEntry.guild_id == guild_id)
            .order_by(col(LedgerEntry.id).desc())
            .limit(limit)
            .offset(offset)
        )
        total = await session.exec(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.guild_id == guild_id)
        )
        return list(entries.all()), total.one()

    async def usage(self, session: AsyncSession, guild_id: int) -> list[tuple[int, int]]:
        """(member_id, credits used) in the current period, biggest users first."""
        budget = await self._touch(session, guild_id)
        rows = await session.exec(
            select(MemberUsage.member_id, MemberUsage.used)
            .where(
                MemberUsage.guild_id == guild_id,
                MemberUsage.period_start == budget.period_start,
                col(MemberUsage.used) > 0,
            )
            .order_by(col(MemberUsage.used).desc(), col(MemberUsage.member_id))
        )
        return [(member_id, used) for member_id, used in rows.all()]

    async def spend_by_day(
        self, session: AsyncSession, guild_id: int, since: datetime
    ) -> dict[tuple[int, date], int]:
        """Credits each member spent per day (UTC) since ``since``.

        A job counts on the day its credits were reserved, at its net cost: what settling or a
        refund gave back later is taken off that day, so a refunded job costs nothing.
        """
        rows = await session.exec(
            select(
                LedgerEntry.job_id,
                LedgerEntry.member_id,
                LedgerEntry.kind,
                LedgerEntry.amount,
                LedgerEntry.created_at,
            ).where(
                LedgerEntry.guild_id == guild_id,
                col(LedgerEntry.job_id).is_not(None),
                col(LedgerEntry.created_at) >= since,
                col(LedgerEntry.kind).in_(
                    [LedgerKind.RESERVE, LedgerKind.SETTLE, LedgerKind.REFUND]
                ),
            )
        )
        reserved: dict[str, tuple[int, date]] = {}
        net: defaultdict[str, int] = defaultdict(int)
        for job_id, member_id, kind, amount, created_at in rows.all():
            net[job_id] += amount
            if kind == LedgerKind.RESERVE and member_id is not None:
                reserved[job_id] = (member_id, created_at.date())
        spend: defaultdict[tuple[int, date], int] = defaultdict(int)
        for job_id, member_day in reserved.items():  # jobs reserved before ``since`` are left out
            spend[member_day] += max(0, -net[job_id])
        return {key: amount for key, amount in spend.items() if amount > 0}

    # --- internals -------------------------------------------------------------------------

    async def _touch(self, session: AsyncSession, guild_id: int) -> GuildBudget:
        """The guild's row, created on first sight and rolled into the current period."""
        now = self._clock.now()
        budget = await self._find(session, guild_id)
        if budget is None:
            await self._create(session, guild_id, now)
            budget = await self._load(session, guild_id)
        resets_at = _resets_at(budget)
        if resets_at is None or now < resets_at:
            return budget

        # Lock, then re-read: the rollover's ledger amount must be computed from current values.
        budget = await self._load(session, guild_id, lock=True)
        old_start = budget.period_start
        resets_at = _resets_at(budget)
        if resets_at is None or now < resets_at:
            return budget
        new_balance = budget.limit_credits - budget.reserved
        rolled = await session.exec(
            update(GuildBudget)
            .where(
                col(GuildBudget.guild_id) == guild_id,
                col(GuildBudget.period_start) == old_start,
            )
            .values(
                spent=0,
                bonus=0,
                balance=new_balance,
                period_start=period_start(Period(budget.period), now),
            )
            .execution_options(synchronize_session=False)
        )
        if rolled.rowcount:
            self._append(
                session,
                guild_id,
                LedgerKind.ROLLOVER,
                new_balance - budget.balance,
                note=f"new {budget.period} period",
            )
            await session.flush()
        return await self._load(session, guild_id)

    async def _create(self, session: AsyncSession, guild_id: int, now: datetime) -> None:
        """Give a guild seen for the first time its default budget, once, even under races."""
        limit = self._default_guild_credits
        created = await insert_ignore(
            session,
            GuildBudget,
            {"guild_id": guild_id},
            {
                "limit_credits": limit,
                "period": Period.NONE,
                "member_cap": None,
                "period_start": period_start(Period.NONE, now),
                "balance": limit,
                "reserved": 0,
                "spent": 0,
                "bonus": 0,
                "updated_by": None,
                "updated_at": now,
                "created_at": now,
            },
        )
        if created:
            self._append(session, guild_id, LedgerKind.GRANT, limit, note="default budget")
            await session.flush()

    async def _find(
        self, session: AsyncSession, guild_id: int, *, lock: bool = False
    ) -> GuildBudget | None:
        statement = (
            select(GuildBudget)
            .where(GuildBudget.guild_id == guild_id)
            .execution_options(populate_existing=True)
        )
        if lock:
            statement = statement.with_for_update()
        return (await session.exec(statement)).one_or_none()

    async def _load(
        self, session: AsyncSession, guild_id: int, *, lock: bool = False
    ) -> GuildBudget:
        budget = await self._find(session, guild_id, lock=lock)
        if budget is None:
            raise LookupError(f"guild {guild_id} has no budget row")
        return budget

    async def _update_locked(
        self, session: AsyncSession, guild_id: int, values: dict[str, Any]
    ) -> None:
        """Write values computed from a row this transaction holds locked."""
        await session.exec(
            update(GuildBudget)
            .where(col(GuildBudget.guild_id) == guild_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def _member_used(self, session: AsyncSession, budget: GuildBudget, member_id: int) -> int:
        used = await session.exec(
            select(MemberUsage.used).where(
                MemberUsage.guild_id == budget.guild_id,
                MemberUsage.member_id == member_id,
                MemberUsage.period_start == budget.period_start,
            )
        )
        return used.one_or_none() or 0

    async def _release(
        self,
        session: AsyncSession,
        job_id: str,
        state: ReservationState,
        consumed: int | None,
    ) -> Reservation | None:
        """Move a held reservation to ``state``; None when it was not held (already done)."""
        released = await session.exec(
            update(Reservation)
            .where(
                col(Reservation.job_id) == job_id, col(Reservation.state) == ReservationState.HELD
            )
            .values(state=state, consumed=consumed, released_at=self._clock.now())
            .execution_options(synchronize_session=False)
        )
        if released.rowcount == 0:
            return None
        reservation = await session.exec(
            select(Reservation)
            .where(Reservation.job_id == job_id)
            .execution_options(populate_existing=True)
        )
        return reservation.one()

    async def _apply_release(
        self,
        session: AsyncSession,
        reservation: Reservation,
        *,
        returned: int,
        spent: int,
        kind: LedgerKind,
    ) -> None:
        budget = await self._touch(session, reservation.guild_id)
        await session.exec(
            update(GuildBudget)
            .where(col(GuildBudget.guild_id) == reservation.guild_id)
            .values(
                reserved=GuildBudget.reserved - reservation.amount,
                spent=GuildBudget.spent + spent,
                balance=GuildBudget.balance + returned,
            )
            .execution_options(synchronize_session=False)
        )
        if reservation.period_start == budget.period_start:
            await session.exec(
                update(MemberUsage)
                .where(
                    col(MemberUsage.guild_id) == reservation.guild_id,
                    col(MemberUsage.member_id) == reservation.member_id,
                    col(MemberUsage.period_start) == reservation.period_start,
                )
                .values(used=MemberUsage.used - returned)
                .execution_options(synchronize_session=False)
            )
        note = f"consumed {spent}" if kind is LedgerKind.SETTLE else None
        self._append(
            session,
            reservation.guild_id,
            kind,
            returned,
            member_id=reservation.member_id,
            job_id=reservation.job_id,
            note=note,
        )
        await session.flush()

    def _append(
        self,
        session: AsyncSession,
        guild_id: int,
        kind: LedgerKind,
        amount: int,
        *,
        member_id: int | None = None,
        job_id: str | None = None,
        actor_id: int | None = None,
        note: str | None = None,
    ) -> None:
        session.add(
            LedgerEntry(
                guild_id=guild_id,
                member_id=member_id,
                job_id=job_id,
                kind=kind,
                amount=amount,
                actor_id=actor_id,
                note=note,
                created_at=self._clock.now(),
            )
        )


def _change_note(
    credits: int | None,  # noqa: A002
    period: Period | None,
    member_cap: int | None,
    *,
    clear_member_cap: bool,
) -> str:
    """What an admin changed, e.g. "limit 400, period weekly, member cap 80"."""
    changes = [] if credits is None else [f"limit {credits}"]
    if period is not None:
        changes.append(f"period {period}")
    if clear_member_cap:
        changes.append("no member cap")
    elif member_cap is not None:
        changes.append(f"member cap {member_cap}")
    return ", ".join(changes)


def _resets_at(budget: GuildBudget) -> datetime | None:
    return next_reset(Period(budget.period), budget.period_start)


def _view(budget: GuildBudget, member_used: int | None) -> BudgetView:
    return BudgetView(
        guild_id=budget.guild_id,
        limit=budget.limit_credits,
        bonus=budget.bonus,
        spent=budget.spent,
        reserved=budget.reserved,
        remaining=max(0, budget.balance),
        period=Period(budget.period),
        period_start=budget.period_start,
        resets_at=_resets_at(budget),
        member_cap=budget.member_cap,
        member_used=member_used,
        updated_by=budget.updated_by,
        updated_at=budget.updated_at,
    )
