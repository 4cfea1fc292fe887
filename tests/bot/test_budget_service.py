"""The budget use cases against real databases: one transaction each, what /credits lists."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.budget import BudgetChangeRefused, Budgets, LedgerKind
from bot.budget_service import ACTIVE_JOBS_SHOWN, BudgetService
from bot.db import Database
from bot.jobs import JobState, JobStore
from tests.support.clock import FakeClock
from tests.support.jobs import new_job

GUILD = 1_100_000_000_000_000_001
ALICE = 1_100_000_000_000_000_002
BOB = 1_100_000_000_000_000_003


@pytest.fixture
def jobs(clock: FakeClock) -> JobStore:
    return JobStore(clock=clock)


@pytest.fixture
def service(database: Database, jobs: JobStore, clock: FakeClock) -> BudgetService:
    budgets = Budgets(default_guild_credits=400, clock=clock)
    return BudgetService(database=database, budgets=budgets, jobs=jobs, clock=clock)


async def add_job(database: Database, jobs: JobStore, clock: FakeClock, member: int) -> str:
    async with database.transaction() as session:
        job = await jobs.create(
            session, new_job(guild_id=GUILD, member_id=member), next_poll_at=clock.now()
        )
    await clock.advance(1)
    return job.id


async def test_overview_lists_only_the_members_unfinished_jobs_oldest_first(
    service: BudgetService, database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    mine = [await add_job(database, jobs, clock, ALICE) for _ in range(ACTIVE_JOBS_SHOWN + 2)]
    await add_job(database, jobs, clock, BOB)
    async with database.transaction() as session:
        assert await jobs.transition(session, mine[0], JobState.CREATED, JobState.FAILED)

    overview = await service.overview(GUILD, ALICE)
    assert [job.id for job in overview.active_jobs] == mine[1 : ACTIVE_JOBS_SHOWN + 1]
    assert overview.active_total == ACTIVE_JOBS_SHOWN + 1
    assert overview.budget.remaining == 400
    assert overview.budget.member_used == 0


async def test_set_and_add_each_commit_and_show_the_result(service: BudgetService) -> None:
    view = await service.set_budget(
        GUILD, credits=200, period="weekly", per_member=80, actor_id=ALICE, may_raise=True
    )
    assert (view.limit, view.member_cap) == (200, 80)
    view = await service.add_credits(GUILD, 40, actor_id=ALICE, may_raise=True)
    assert view.bonus == 40
    view = await service.set_budget(
        GUILD, credits=None, period=None, per_member=0, actor_id=ALICE, may_raise=True
    )
    assert view.member_cap is None
    page = await service.history(GUILD, 99, page_size=2)
    assert (page.page, page.pages) == (1, 2)  # an out-of-range page shows the last one
    assert [entry.kind for entry in page.entries] == [LedgerKind.GRANT, LedgerKind.GRANT]


async def test_an_unknown_period_is_refused(service: BudgetService) -> None:
    with pytest.raises(BudgetChangeRefused) as refused:
        await service.set_budget(
            GUILD, credits=100, period="yearly", per_member=None, actor_id=ALICE, may_raise=True
        )
    assert refused.value.reason == "unknown_period"
    assert (await service.view(GUILD)).limit == 400


async def test_daily_usage_counts_each_job_on_its_day_at_its_net_cost(
    service: BudgetService, database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    budgets = Budgets(default_guild_credits=400, clock=clock)

    async def reserved(member: int) -> str:
        job_id = await add_job(database, jobs, clock, member)
        async with database.transaction() as session:
            await budgets.reserve(session, guild_id=GUILD, member_id=member, cost=40, job_id=job_id)
        return job_id

    first_day = clock.now().date()
    settled = await reserved(ALICE)
    refunded = await reserved(ALICE)
    await clock.advance(24 * 3600)
    await reserved(BOB)
    async with database.transaction() as session:
        await budgets.settle(session, settled, 40)
        await budgets.refund(session, refunded)  # a day later: the first day loses it again

    usage = await service.daily_usage(GUILD)

    assert usage.spend == {(ALICE, first_day): 40, (BOB, usage.today): 40}
    assert usage.today == first_day + timedelta(days=1)
    assert usage.budget.limit == 400
