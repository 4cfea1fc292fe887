"""The budget invariants, checked against the database after every test (and by some tests).

Per guild:
    balance == sum(ledger.amount)
    balance == limit + bonus - spent - reserved
    reserved == sum(amount of held reservations) >= 0
and no member's usage is negative.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.budget import ReservationState
from bot.models import GuildBudget, LedgerEntry, MemberUsage, Reservation


async def ledger_problems(session: AsyncSession, guild_id: int | None = None) -> list[str]:
    """Every broken invariant as one line; [] means the books balance."""
    budgets = select(GuildBudget).execution_options(populate_existing=True)
    ledger = select(LedgerEntry.guild_id, func.sum(LedgerEntry.amount)).group_by(
        col(LedgerEntry.guild_id)
    )
    held = (
        select(Reservation.guild_id, func.sum(Reservation.amount))
        .where(Reservation.state == ReservationState.HELD)
        .group_by(col(Reservation.guild_id))
    )
    negative_usage = select(MemberUsage).where(col(MemberUsage.used) < 0)
    if guild_id is not None:
        budgets = budgets.where(GuildBudget.guild_id == guild_id)
        ledger = ledger.where(LedgerEntry.guild_id == guild_id)
        held = held.where(Reservation.guild_id == guild_id)
        negative_usage = negative_usage.where(MemberUsage.guild_id == guild_id)
    ledger_sums = dict((await session.exec(ledger)).all())
    held_sums = dict((await session.exec(held)).all())

    problems: list[str] = []
    for budget in (await session.exec(budgets)).all():
        gid = budget.guild_id
        ledger_sum = int(ledger_sums.pop(gid, 0) or 0)
        held_sum = int(held_sums.pop(gid, 0) or 0)
        expected = budget.limit_credits + budget.bonus - budget.spent - budget.reserved
        if budget.balance != ledger_sum:
            problems.append(f"guild {gid}: balance {budget.balance} != ledger sum {ledger_sum}")
        if budget.balance != expected:
            problems.append(
                f"guild {gid}: balance {budget.balance} != limit + bonus - spent - reserved"
                f" = {expected}"
            )
        if budget.reserved != held_sum:
            problems.append(
                f"guild {gid}: reserved {budget.reserved} != held reservations {held_sum}"
            )
        if budget.reserved < 0:
            problems.append(f"guild {gid}: reserved {budget.reserved} is negative")
    problems.extend(f"guild {gid}: ledger rows without a budget" for gid in ledger_sums)
    problems.extend(f"guild {gid}: held reservations without a budget" for gid in held_sums)
    problems.extend(
        f"guild {usage.guild_id}: member {usage.member_id} used {usage.used} is negative"
        for usage in (await session.exec(negative_usage)).all()
    )
    return problems
