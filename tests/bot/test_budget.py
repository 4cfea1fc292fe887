"""Budgets against real databases: atomic reservations, idempotent releases, periods, ledger."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlmodel import select

from bot.budget import (
    EPOCH,
    BudgetChangeRefused,
    BudgetRefused,
    Budgets,
    LedgerKind,
    Period,
    next_reset,
    period_start,
)
from bot.db import Database
from bot.models import LedgerEntry, Reservation
from tests.support.clock import FakeClock
from tests.support.ledger import ledger_problems

VIDEO = 40
GUILD = 1_100_000_000_000_000_001  # snowflakes exceed 2**31
ADMIN = 1_100_000_000_000_000_999


@pytest.fixture
def budgets(clock: FakeClock) -> Budgets:
    return Budgets(default_guild_credits=10 * VIDEO, clock=clock)


async def reserve(
    database: Database, budgets: Budgets, job_id: str, *, member: int = 1, cost: int = VIDEO
) -> bool:
    """One reservation in its own transaction; False when refused."""
    try:
        async with database.transaction() as session:
            await budgets.reserve(
                session, guild_id=GUILD, member_id=member, cost=cost, job_id=job_id
            )
    except BudgetRefused:
        return False
    return True


async def ledger(database: Database, guild_id: int = GUILD) -> list[LedgerEntry]:
    async with database.transaction() as session:
        rows = await session.exec(
            select(LedgerEntry).where(LedgerEntry.guild_id == guild_id).order_by(LedgerEntry.id)
        )
        return list(rows.all())


async def view(database: Database, budgets: Budgets, member: int | None = None):
    async with database.transaction() as session:
        return await budgets.view(session, GUILD, member)


async def set_budget(database: Database, budgets: Budgets, **kwargs):
    arguments = {"period": None, "member_cap": None, "actor_id": ADMIN, "may_raise": True}
    async with database.transaction() as session:
        return await budgets.set_budget(session, GUILD, **(arguments | kwargs))


# --- periods -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "start", "reset"),
    [
        (Period.DAILY, datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)),
        (Period.WEEKLY, datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)),
        (Period.MONTHLY, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        (Period.NONE, EPOCH, None),
    ],
)
def test_periods_are_utc_calendar_periods(
    period: Period, start: datetime, reset: datetime | None
) -> None:
    now = datetime(2026, 3, 4, 17, 30, tzinfo=UTC)  # a Wednesday
    assert period_start(period, now) == start
    assert next_reset(period, start) == reset


def test_period_start_converts_to_utc() -> None:
    early_in_berlin = datetime(2026, 3, 4, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert period_start(Period.DAILY, early_in_berlin) == datetime(2026, 3, 3, tzinfo=UTC)


def test_next_reset_of_a_mid_period_start_is_the_next_boundary() -> None:
    started = datetime(2026, 12, 15, 9, 45, tzinfo=UTC)
    assert next_reset(Period.MONTHLY, started) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_reset(Period.DAILY, started) == datetime(2026, 12, 16, tzinfo=UTC)


# --- first sight ---------------------------------------------------------------------------


async def test_a_new_guild_gets_the_default_budget_once(
    database: Database, budgets: Budgets
) -> None:
    views = await asyncio.gather(*(view(database, budgets) for _ in range(20)))

    assert {v.limit for v in views} == {400}
    assert views[0].remaining == 400
    assert views[0].period is Period.NONE
    assert views[0].resets_at is None
    entries = await ledger(database)
    assert [(e.kind, e.amount, e.actor_id, e.note) for e in entries] == [
        (LedgerKind.GRANT, 400, None, "default budget")
    ]


# --- reservations --------------------------------------------------------------------------


async def test_a_hundred_concurrent_reservations_fit_exactly_ten_videos(
    database: Database, budgets: Budgets
) -> None:
    outcomes = await asyncio.gather(
        *(reserve(database, budgets, f"job{i}", member=i) for i in range(100))
    )

    assert outcomes.count(True) == 10
    budget = await view(database, budgets)
    assert (budget.remaining, budget.reserved, budget.spent) == (0, 400, 0)
    entries = await ledger(database)
    assert sum(e.amount for e in entries) == 0
    assert [e.kind for e in entries].count(LedgerKind.RESERVE) == 10
    async with database.transaction() as session:
        assert await ledger_problems(session, GUILD) == []


async def test_concurrent_reservations_respect_the_member_cap(
    database: Database, budgets: Budgets
) -> None:
    await set_budget(database, budgets, credits=10 * VIDEO, member_cap=2 * VIDEO)
    members = [i % 4 for i in range(100)]

    outcomes = await asyncio.gather(
        *(reserve(database, budgets, f"job{i}", member=m) for i, m in enumerate(members))
    )

    winners = [m for m, won in zip(members, outcomes, strict=True) if won]
    assert sorted(winners) == [0, 0, 1, 1, 2, 2, 3, 3]
    budget = await view(database, budgets, member=0)
    assert (budget.remaining, budget.reserved, budget.member_used) == (80, 320, 80)
    async with database.transaction() as session:
        assert await budgets.usage(session, GUILD) == [(0, 80), (1, 80), (2, 80), (3, 80)]


async def test_guild_and_member_limits_bind_together_under_concurrency(
    database: Database, budgets: Budgets
) -> None:
    await set_budget(database, budgets, credits=10 * VIDEO, member_cap=3 * VIDEO)
    members = [i % 5 for i in range(100)]

    outcomes = await asyncio.gather(
        *(reserve(database, budgets, f"job{i}", member=m) for i, m in enumerate(members))
    )

    winners = [m for m, won in zip(members, outcomes, strict=True) if won]
    assert len(winners) == 10
    assert max(winners.count(m) for m in range(5)) <= 3
    assert (await view(database, budgets)).remaining == 0


async def test_refusals_say_what_is_left_and_when_it_resets(
    database: Database, budgets: Budgets, clock: FakeClock
) -> None:
    await set_budget(database, budgets, credits=100, period=Period.DAILY, member_cap=VIDEO + 10)
    assert await reserve(database, budgets, "a", member=1)

    with pytest.raises(BudgetRefused) as member_refusal:
        async with database.transaction() as session:
            await budgets.reserve(session, guild_id=GUILD, member_id=1, cost=VIDEO, job_id="b")
    with pytest.raises(BudgetRefused) as guild_refusal:
        async with database.transaction() as session:
            await budgets.reserve(session, guild_id=GUILD, member_id=2, cost=80, job_id="c")

    tomorrow = datetime(2026, 1, 6, tzinfo=UTC)
    assert clock.now() < tomorrow
    refusal = member_refusal.value
    assert (refusal.reason, refusal.cost, refusal.remaining) == ("member", VIDEO, 60)
    assert (refusal.member_remaining, refusal.resets_at) == (10, tomorrow)
    refusal = guild_refusal.value
    assert (refusal.reason, refusal.cost, refusal.remaining) == ("guild", 80, 60)
    assert (refusal.member_remaining, refusal.resets_at) == (50, tomorrow)


async def test_a_member_refusal_leaves_nothing_behind_even_if_the_caller_commits(
    database: Database, budgets: Budgets
) -> None:
    await set_budget(database, budgets, credits=400, member_cap=VIDEO)
    assert await reserve(database, budgets, "a", member=1)
    before = len(await ledger(database))

    async with database.transaction() as session:
        with pytest.raises(BudgetRefused):
            await budgets.reserve(session, guild_id=GUILD, member_id=1, cost=VIDEO, job_id="b")

    budget = await view(database, budgets, member=1)
    assert (budget.remaining, budget.reserved, budget.member_used) == (360, 40, 40)
    assert len(await ledger(database)) == before


async def test_reserve_rejects_a_non_positive_cost(database: Database, budgets: Budgets) -> None:
    async with database.transaction() as session:
        with pytest.raises(ValueError, match="positive"):
            await budgets.reserve(session, guild_id=GUILD, member_id=1, cost=0, job_id="a")


# --- settle and refund ---------------------------------------------------------------------


async def test_settle_for_less_than_reserved_gives_the_rest_back(
    database: Database, budgets: Budgets
) -> None:
    assert await reserve(database, budgets, "job", member=7)

    async with database.transaction() as session:
        returned = await budgets.settle(session, "job", consumed=25)

    assert returned == 15
    budget = await view(database, budgets, member=7)
    assert (budget.remaining, budget.reserved, budget.spent, budget.member_used) == (
        375,
        0,
        25,
        25,
    )
    last = (await ledger(database))[-1]
    assert (last.kind, last.amount, last.job_id, last.member_id, last.note) == (
        LedgerKind.SETTLE,
        15,
        "job",
        7,
        "consumed 25",
    )


async def test_settle_in_full_writes_a_zero_entry(database: Database, budgets: Budgets) -> None:
    assert await reserve(database, budgets, "job")
    async with database.transaction() as session:
        assert await budgets.settle(session, "job", consumed=VIDEO) == 0
    last = (await ledger(database))[-1]
    assert (last.kind, last.amount, last.note) == (LedgerKind.SETTLE, 0, "consumed 40")
    assert (await view(database, budgets)).spent == VIDEO


async def test_an_overcharge_is_recorded_as_spent(database: Database, budgets: Budgets) -> None:
    assert await reserve(database, budgets, "job")
    async with database.transaction() as session:
        assert await budgets.settle(session, "job", consumed=VIDEO + 5) == 0
    budget = await view(database, budgets)
    assert (budget.spent, budget.remaining) == (45, 355)


async def test_double_settle_and_double_refund_are_no_ops(
    database: Database, budgets: Budgets
) -> None:
    assert await reserve(database, budgets, "settled")
    assert await reserve(database, budgets, "refunded")

    async with database.transaction() as session:
        assert await budgets.settle(session, "settled", consumed=30) == 10
        assert await budgets.refund(session, "refunded") == VIDEO
    entries_after_first = len(await ledger(database))
    budget_after_first = await view(database, budgets)
    async with database.transaction() as session:
        assert await budgets.settle(session, "settled", consumed=0) == 0
        assert await budgets.refund(session, "refunded") == 0
        assert await budgets.refund(session, "settled") == 0  # refund after settle
        assert await budgets.settle(session, "refunded", consumed=0) == 0
        assert await budgets.refund(session, "never-reserved") == 0

    assert len(await ledger(database)) == entries_after_first
    assert await view(database, budgets) == budget_after_first
    assert (budget_after_first.spent, budget_after_first.remaining) == (30, 370)
    async with database.transaction() as session:
        reservation = await session.get(Reservation, "settled")
    assert reservation is not None
    assert (reservation.state, reservation.consumed) == ("settled", 30)


async def test_concurrent_settles_give_back_once(database: Database, budgets: Budgets) -> None:
    assert await reserve(database, budgets, "job")

    async def settle() -> int:
        async with database.transaction() as session:
            return await budgets.settle(session, "job", consumed=10)

    assert sorted(await asyncio.gather(*(settle() for _ in range(5)))) == [0, 0, 0, 0, 30]
    assert (await view(database, budgets)).remaining == 390


# --- periods in use ------------------------------------------------------------------------


@pytest.mark.parametrize("period", [Period.DAILY, Period.WEEKLY, Period.MONTHLY])
async def test_rollover_resets_spent_keeps_the_ledger_and_carries_reservations(
    database: Database, budgets: Budgets, clock: FakeClock, period: Period
) -> None:
    await set_budget(database, budgets, credits=200, period=period)
    await add_credits(database, budgets, 80)
    assert await reserve(database, budgets, "done", member=1)
    assert await reserve(database, budgets, "in-flight", member=2)
    async with database.transaction() as session:
        await budgets.settle(session, "done", consumed=VIDEO)
    before = await view(database, budgets)
    assert (before.spent, before.bonus, before.reserved, before.remaining) == (40, 80, 40, 200)
    entries_before = await ledger(database)

    resets_at = before.resets_at
    assert resets_at is not None
    await clock.advance((resets_at - clock.now()).total_seconds())
    after = await view(database, budgets)

    assert (after.spent, after.bonus, after.reserved, after.remaining) == (0, 0, 40, 160)
    assert after.period_start == resets_at == period_start(period, clock.now())
    assert after.resets_at == next_reset(period, resets_at)
    entries_after = await ledger(database)
    assert entries_after[: len(entries_before)] == entries_before
    rollover = entries_after[len(entries_before) :]
    assert [(e.kind, e.amount) for e in rollover] == [(LedgerKind.ROLLOVER, -40)]
    async with database.transaction() as session:
        assert await budgets.usage(session, GUILD) == []

    # The carried reservation settles into the new period; its member was counted in the old.
    async with database.transaction() as session:
        assert await budgets.settle(session, "in-flight", consumed=VIDEO) == 0
        assert await budgets.usage(session, GUILD) == []
    settled = await view(database, budgets)
    assert (settled.spent, settled.reserved, settled.remaining) == (40, 0, 160)


async def test_rollover_after_several_idle_periods_happens_once(
    database: Database, budgets: Budgets, clock: FakeClock
) -> None:
    await set_budget(database, budgets, credits=80, period=Period.DAILY)
    assert await reserve(database, budgets, "job")
    async with database.transaction() as session:
        await budgets.settle(session, "job", consumed=VIDEO)

    await clock.advance(timedelta(days=3, hours=5).total_seconds())
    views = await asyncio.gather(*(view(database, budgets) for _ in range(5)))

    assert {(v.spent, v.remaining) for v in views} == {(0, 80)}
    assert views[0].period_start == period_start(Period.DAILY, clock.now())
    rollovers = [e for e in await ledger(database) if e.kind == LedgerKind.ROLLOVER]
    assert [e.amount for e in rollovers] == [40]


async def test_a_period_change_starts_a_fresh_period_now(
    database: Database, budgets: Budgets, clock: FakeClock
) -> None:
    assert await reserve(database, budgets, "job", member=3)
    async with database.transaction() as session:
        await budgets.settle(session, "job", consumed=VIDEO)

    changed = await set_budget(database, budgets, credits=400, period=Period.WEEKLY)

    assert (changed.period, changed.period_start, changed.spent) == (Period.WEEKLY, clock.now(), 0)
    assert changed.remaining == 400
    assert changed.resets_at == datetime(2026, 1, 12, tzinfo=UTC)
    async with database.transaction() as session:
        assert await budgets.usage(session, GUILD) == []


# --- admin changes -------------------------------------------------------------------------


async def add_credits(database: Database, budgets: Budgets, amount: int, *, may_raise=True):
    async with database.transaction() as session:
        return await budgets.add_credits(
            session, GUILD, amount, actor_id=ADMIN, may_raise=may_raise
        )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"credits": -1}, "negative_limit"),
        ({"credits": 100, "member_cap": -1}, "negative_limit"),
        ({"credits": 100, "member_cap": 101}, "cap_above_limit"),
        ({"credits": 100, "period": "yearly"}, "unknown_period"),
        ({"credits": 401, "may_raise": False}, "raise_not_allowed"),
        ({"credits": None, "member_cap": -1}, "negative_limit"),
        ({"credits": None, "member_cap": 401}, "cap_above_limit"),
        ({"credits": None, "period": "yearly"}, "unknown_period"),
        ({"credits": None}, "nothing_to_change"),
    ],
)
async def test_invalid_budget_changes_are_refused_and_change_nothing(
    database: Database, budgets: Budgets, change: dict, reason: str
) -> None:
    before = await view(database, budgets)

    with pytest.raises(BudgetChangeRefused) as refused:
        await set_budget(database, budgets, **change)

    assert refused.value.reason == reason
    assert await view(database, budgets) == before
    assert len(await ledger(database)) == 1


async def test_set_budget_records_the_change_and_who_made_it(
    database: Database, budgets: Budgets, clock: FakeClock
) -> None:
    assert await reserve(database, budgets, "job")

    lowered = await set_budget(
        database, budgets, credits=200, member_cap=80, period=Period.DAILY, may_raise=False
    )
    assert (lowered.limit, lowered.member_cap, lowered.remaining) == (200, 80, 160)
    assert (lowered.updated_by, lowered.updated_at) == (ADMIN, clock.now())
    cleared = await set_budget(database, budgets, credits=200, clear_member_cap=True)
    assert cleared.member_cap is None

    grants = [e for e in await ledger(database) if e.kind == LedgerKind.GRANT]
    assert [(e.amount, e.actor_id) for e in grants] == [(400, None), (-200, ADMIN), (0, ADMIN)]
    assert grants[1].note == "limit 200, period daily, member cap 80"


async def test_lowering_the_limit_below_use_leaves_nothing_to_reserve(
    database: Database, budgets: Budgets
) -> None:
    assert await reserve(database, budgets, "a")
    assert await reserve(database, budgets, "b")

    lowered = await set_budget(database, budgets, credits=40, may_raise=False)

    assert (lowered.remaining, lowered.reserved) == (0, 80)
    assert not await reserve(database, budgets, "c", cost=1)
    async with database.transaction() as session:
        assert await budgets.refund(session, "a") == VIDEO
    assert (await view(database, budgets)).remaining == 0
    async with database.transaction() as session:
        assert await budgets.refund(session, "b") == VIDEO
    assert (await view(database, budgets)).remaining == 40


async def test_set_replaces_the_budget_and_folds_in_an_earlier_top_up(
    database: Database, budgets: Budgets, clock: FakeClock
) -> None:
    await set_budget(database, budgets, credits=200, period=Period.WEEKLY, member_cap=80)
    started = clock.now()
    assert await reserve(database, budgets, "done", member=1)
    async with database.transaction() as session:
        await budgets.settle(session, "done", consumed=30)
    assert await reserve(database, budgets, "in-flight", member=2)
    await clock.advance(timedelta(hours=3).total_seconds())
    topped_up = await add_credits(database, budgets, 40)
    assert (topped_up.limit, topped_up.bonus, topped_up.remaining) == (200, 40, 170)

    replaced = await set_budget(database, budgets, credits=400)

    assert (replaced.limit, replaced.bonus, replaced.limit + replaced.bonus) == (400, 0, 400)
    assert (replaced.spent, replaced.reserved) == (30, 40)
    assert replaced.remaining == 400 - replaced.spent - replaced.reserved == 330
    # Still this week's budget, in force since the period began, with the cap kept.
    assert (replaced.period, replaced.period_start) == (Period.WEEKLY, started)
    assert replaced.resets_at == datetime(2026, 1, 12, tzinfo=UTC)
    assert replaced.member_cap == 80
    assert await view(database, budgets) == replaced
    async with database.transaction() as session:
        entries, _ = await budgets.history(session, GUILD, limit=2)
        assert await ledger_problems(session, GUILD) == []
    assert [(e.kind, e.amount, e.note) for e in entries] == [
        (LedgerKind.GRANT, 160, "limit 400"),
        (LedgerKind.ADJUST, 40, "+40 credits"),
    ]
    assert sum(e.amount for e in await ledger(database)) == 330


async def test_changing_only_the_member_cap_keeps_the_limit_and_the_top_up(
    database: Database, budgets: Budgets, clock: FakeClock
) -> None:
    await set_budget(database, budgets, credits=200, period=Period.WEEKLY, member_cap=80)
    started = clock.now()
    await add_credits(database, budgets, 40)
    assert await reserve(database, budgets, "job", member=1)

    capped = await set_budget(database, budgets, member_cap=120)

    assert (capped.limit, capped.bonus, capped.member_cap) == (200, 40, 120)
    assert (capped.reserved, capped.remaining) == (40, 200)
    assert (capped.period, capped.period_start) == (Period.WEEKLY, started)
    uncapped = await set_budget(database, budgets, clear_member_cap=True)
    assert (uncapped.limit, uncapped.bonus, uncapped.member_cap) == (200, 40, None)
    assert uncapped.remaining == 200

    grants = [e for e in await ledger(database) if e.kind == LedgerKind.GRANT]
    assert [(e.amount, e.note) for e in grants[-2:]] == [
        (0, "member cap 120"),
        (0, "no member cap"),
    ]


async def test_changing_only_the_period_keeps_the_limit(
    database: Database, budgets: Budgets, clock: FakeClock
) -> None:
    await set_budget(database, budgets, credits=200)
    await add_credits(database, budgets, 40)
    assert await reserve(database, budgets, "done", member=1)
    async with database.transaction() as session:
        await budgets.settle(session, "done", consumed=VIDEO)
    assert await reserve(database, budgets, "in-flight", member=2)

    changed = await set_budget(database, budgets, period=Period.DAILY)

    assert changed.limit == 200
    # A new period starts now: what was spent and topped up belonged to the old one.
    assert (changed.bonus, changed.spent, changed.reserved, changed.remaining) == (0, 0, 40, 160)
    assert (changed.period, changed.period_start) == (Period.DAILY, clock.now())
    last = (await ledger(database))[-1]
    assert (last.kind, last.amount, last.note) == (LedgerKind.GRANT, 0, "period daily")


async def test_a_budget_change_with_nothing_to_change_is_refused(
    database: Database, budgets: Budgets
) -> None:
    before = await view(database, budgets)

    with pytest.raises(BudgetChangeRefused) as refused:
        await set_budget(database, budgets, credits=None, clear_member_cap=False)

    assert refused.value.reason == "nothing_to_change"
    assert await view(database, budgets) == before
    assert len(await ledger(database)) == 1


@pytest.mark.parametrize(
    ("new_limit", "allowed"),
    [(240, True), (220, True), (300, False)],
)
async def test_without_permission_to_raise_a_set_may_fold_a_top_up_but_not_raise(
    database: Database, budgets: Budgets, new_limit: int, allowed: bool
) -> None:
    await set_budget(database, budgets, credits=200)
    await add_credits(database, budgets, 40)
    before = await view(database, budgets)
    assert before.remaining == 240

    if allowed:
        changed = await set_budget(database, budgets, credits=new_limit, may_raise=False)
        assert (changed.limit, changed.bonus, changed.remaining) == (new_limit, 0, new_limit)
        last = (await ledger(database))[-1]
        assert (last.kind, last.amount) == (LedgerKind.GRANT, new_limit - 240)
    else:
        with pytest.raises(BudgetChangeRefused) as refused:
            await set_budget(database, budgets, credits=new_limit, may_raise=False)
        assert refused.value.reason == "raise_not_allowed"
        assert await view(database, budgets) == before


async def test_add_credits_tops_up_and_deducts(database: Database, budgets: Budgets) -> None:
    raised = await add_credits(database, budgets, 120)
    assert (raised.bonus, raised.remaining) == (120, 520)
    lowered = await add_credits(database, budgets, -500, may_raise=False)
    assert (lowered.bonus, lowered.remaining) == (-380, 20)

    adjustments = [e for e in await ledger(database) if e.kind == LedgerKind.ADJUST]
    assert [(e.amount, e.actor_id, e.note) for e in adjustments] == [
        (120, ADMIN, "+120 credits"),
        (-500, ADMIN, "-500 credits"),
    ]


async def test_adding_credits_needs_permission_to_raise(
    database: Database, budgets: Budgets
) -> None:
    with pytest.raises(BudgetChangeRefused) as refused:
        await add_credits(database, budgets, 40, may_raise=False)
    assert refused.value.reason == "raise_not_allowed"
    assert (await view(database, budgets)).remaining == 400


async def test_credits_cannot_be_taken_below_what_is_reserved(
    database: Database, budgets: Budgets
) -> None:
    for job in ("a", "b", "c"):
        assert await reserve(database, budgets, job)

    with pytest.raises(BudgetChangeRefused) as refused:
        await add_credits(database, budgets, -281)

    assert refused.value.reason == "below_reserved"
    budget = await view(database, budgets)
    assert (budget.remaining, budget.bonus) == (280, 0)
    assert (await add_credits(database, budgets, -280)).remaining == 0


# --- reports -------------------------------------------------------------------------------


async def test_history_pages_newest_first(database: Database, budgets: Budgets) -> None:
    for job in ("a", "b", "c"):
        assert await reserve(database, budgets, job)

    async with database.transaction() as session:
        first_page, total = await budgets.history(session, GUILD, limit=2)
        second_page, _ = await budgets.history(session, GUILD, limit=2, offset=2)
        other_guild, other_total = await budgets.history(session, GUILD + 1)

    assert total == 4
    assert [e.job_id for e in first_page] == ["c", "b"]
    assert [(e.kind, e.job_id) for e in second_page] == [
        (LedgerKind.RESERVE, "a"),
        (LedgerKind.GRANT, None),
    ]
    assert (other_guild, other_total) == ([], 0)


async def test_usage_lists_members_by_credits_used(database: Database, budgets: Budgets) -> None:
    for job, member in [("a", 5), ("b", 6), ("c", 6), ("d", 7)]:
        assert await reserve(database, budgets, job, member=member)
    async with database.transaction() as session:
        await budgets.refund(session, "d")
        await budgets.settle(session, "a", consumed=30)
        assert await budgets.usage(session, GUILD) == [(6, 80), (5, 30)]


class Tampered(Exception):
    """Rolls back a transaction that broke the books on purpose."""


async def test_ledger_problems_reports_tampering(database: Database, budgets: Budgets) -> None:
    assert await reserve(database, budgets, "job")

    async def tamper() -> None:
        async with database.transaction() as session:
            session.add(
                LedgerEntry(guild_id=GUILD, kind="adjust", amount=5, created_at=datetime.now(UTC))
            )
            raise Tampered(await ledger_problems(session, GUILD))

    with pytest.raises(Tampered) as tampered:
        await tamper()

    assert tampered.value.args[0] == [f"guild {GUILD}: balance 360 != ledger sum 365"]


async def test_lowering_the_budget_below_the_member_cap_is_refused(database, clock) -> None:
    budgets = Budgets(default_guild_credits=0, clock=clock)
    async with database.transaction() as session:
        await budgets.set_budget(
            session, 77, credits=400, period=None, member_cap=200, actor_id=1, may_raise=True
        )
    with pytest.raises(BudgetChangeRefused) as refused:
        async with database.transaction() as session:
            await budgets.set_budget(
                session, 77, credits=100, period=None, member_cap=None, actor_id=1, may_raise=True
            )
    assert refused.value.reason == "cap_above_limit"
    async with database.transaction() as session:
        view = await budgets.set_budget(
            session, 77, credits=100, period=None, member_cap=50, actor_id=1, may_raise=True
        )
    assert (view.limit, view.member_cap) == (100, 50)
