"""Budget alerts against real databases: each threshold once per period, decided by the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import select

from bot.budget import BudgetRefused, Budgets, Period
from bot.budget_alerts import AlertSettingsRefused, BudgetAlert
from bot.budget_service import BudgetService
from bot.db import Database
from bot.jobs import JobStore
from bot.models import BudgetAlertClaim
from tests.support.clock import FakeClock

VIDEO = 40
GUILD = 1_100_000_000_000_000_001
CHANNEL = 1_100_000_000_000_000_010
ROLE = 1_100_000_000_000_000_020
ADMIN = 1_100_000_000_000_000_999
HOUR = timedelta(hours=1)


@pytest.fixture
def budgets(clock: FakeClock) -> Budgets:
    return Budgets(default_guild_credits=10 * VIDEO, clock=clock)


@pytest.fixture
def service(database: Database, budgets: Budgets, clock: FakeClock) -> BudgetService:
    return BudgetService(
        database=database, budgets=budgets, jobs=JobStore(clock=clock), clock=clock
    )


class Spender:
    """Reserves, settles and refunds videos for GUILD, each in its own transaction."""

    def __init__(self, database: Database, budgets: Budgets) -> None:
        self._database = database
        self._budgets = budgets
        self._count = 0

    async def reserve(self, videos: int = 1) -> list[str]:
        job_ids = []
        for _ in range(videos):
            self._count += 1
            job_id = f"job{self._count}"
            async with self._database.transaction() as session:
                await self._budgets.reserve(
                    session, guild_id=GUILD, member_id=1, cost=VIDEO, job_id=job_id
                )
            job_ids.append(job_id)
        return job_ids

    async def refund(self, *job_ids: str) -> None:
        for job_id in job_ids:
            async with self._database.transaction() as session:
                await self._budgets.refund(session, job_id)

    async def settle(self, *job_ids: str, consumed: int = VIDEO) -> None:
        for job_id in job_ids:
            async with self._database.transaction() as session:
                await self._budgets.settle(session, job_id, consumed)


@pytest.fixture
def spend(database: Database, budgets: Budgets) -> Spender:
    return Spender(database, budgets)


async def fired(service: BudgetService) -> list[int]:
    return [alert.threshold_percent for alert in await service.alerts_due(GUILD)]


async def claims(database: Database) -> list[tuple[int, int]]:
    """(budget size, threshold) of every claim of GUILD."""
    async with database.transaction() as session:
        rows = await session.exec(
            select(BudgetAlertClaim.budget_credits, BudgetAlertClaim.threshold_percent).where(
                BudgetAlertClaim.guild_id == GUILD
            )
        )
        return sorted((budget, threshold) for budget, threshold in rows.all())


async def alerts_on(service: BudgetService, at_percent: int = 80, **kwargs: Any) -> None:
    await service.configure_alerts(GUILD, channel_id=CHANNEL, at_percent=at_percent, **kwargs)


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements run while inside (transaction control left out)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = args[2]
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


# --- settings ------------------------------------------------------------------------------


async def test_settings_are_saved_replaced_and_turned_off(
    service: BudgetService, clock: FakeClock
) -> None:
    assert await service.alert_settings(GUILD) is None

    saved = await service.configure_alerts(
        GUILD, channel_id=CHANNEL, at_percent=75, ping_role_id=ROLE, actor_id=ADMIN
    )
    assert saved == await service.alert_settings(GUILD)
    assert (saved.channel_id, saved.threshold_percent, saved.ping_role_id) == (CHANNEL, 75, ROLE)
    assert (saved.updated_by, saved.updated_at) == (ADMIN, clock.now())

    await clock.advance(60)
    replaced = await service.configure_alerts(GUILD, channel_id=CHANNEL + 1, actor_id=ADMIN + 1)
    assert replaced == await service.alert_settings(GUILD)
    assert (replaced.channel_id, replaced.threshold_percent) == (CHANNEL + 1, 80)
    assert replaced.ping_role_id is None  # no role named: no pings
    assert (replaced.updated_by, replaced.updated_at) == (ADMIN + 1, clock.now())

    assert await service.disable_alerts(GUILD) is True
    assert await service.disable_alerts(GUILD) is False
    assert await service.alert_settings(GUILD) is None


@pytest.mark.parametrize("at_percent", [0, 100, -5, 250])
async def test_a_threshold_outside_1_to_99_is_refused(
    service: BudgetService, at_percent: int
) -> None:
    with pytest.raises(AlertSettingsRefused) as refused:
        await alerts_on(service, at_percent, actor_id=ADMIN)

    assert refused.value.reason == "threshold_out_of_range"
    assert refused.value.params == {"minimum": 1, "maximum": 99}
    assert await service.alert_settings(GUILD) is None


@pytest.mark.parametrize("at_percent", [1, 99])
async def test_the_edges_of_the_range_are_accepted(service: BudgetService, at_percent) -> None:
    await alerts_on(service, at_percent, actor_id=ADMIN)
    settings = await service.alert_settings(GUILD)
    assert settings is not None
    assert settings.threshold_percent == at_percent


# --- firing --------------------------------------------------------------------------------


async def test_each_threshold_fires_once_as_the_spend_crosses_it(
    service: BudgetService, spend: Spender
) -> None:
    await alerts_on(service, ping_role_id=ROLE, actor_id=ADMIN)
    seen: list[list[int]] = []
    for _ in range(10):
        await spend.reserve()
        seen.append(await fired(service))

    # 320 of 400 is 80 %, 400 is all of it; nothing in between or after.
    assert seen == [[], [], [], [], [], [], [], [80], [], [100]]
    assert await fired(service) == []


async def test_an_alert_says_what_is_left_and_where_to_post(
    service: BudgetService, spend: Spender
) -> None:
    await alerts_on(service, ping_role_id=ROLE, actor_id=ADMIN)
    await spend.reserve(7)
    settled, _ = await spend.reserve(2)
    await spend.settle(settled, consumed=VIDEO)

    [alert] = await service.alerts_due(GUILD)

    assert isinstance(alert, BudgetAlert)
    assert (alert.guild_id, alert.channel_id, alert.ping_role_id) == (GUILD, CHANNEL, ROLE)
    # Used counts the settled video and the ones still in flight alike.
    assert (alert.threshold_percent, alert.budget, alert.used, alert.remaining) == (
        80,
        400,
        360,
        40,
    )
    assert not alert.exhausted
    assert alert.resets_at is None  # the default budget never resets


async def test_crossing_both_at_once_sends_only_the_100_percent_alert(
    service: BudgetService, spend: Spender, database: Database
) -> None:
    await alerts_on(service, actor_id=ADMIN)
    await spend.reserve(10)

    [alert] = await service.alerts_due(GUILD)

    assert alert.threshold_percent == 100
    assert alert.exhausted
    assert (alert.used, alert.remaining, alert.runs_out_at) == (400, 0, None)
    assert await claims(database) == [(400, 80), (400, 100)]  # no stale 80 % message later
    assert await fired(service) == []


async def test_a_new_period_fires_again(
    service: BudgetService, spend: Spender, clock: FakeClock
) -> None:
    await service.set_budget(
        GUILD, credits=400, period=Period.DAILY, per_member=None, actor_id=ADMIN, may_raise=True
    )
    await alerts_on(service, actor_id=ADMIN)
    await spend.settle(*await spend.reserve(10))
    assert await fired(service) == [100]

    await clock.advance(timedelta(days=1) / timedelta(seconds=1))
    assert await fired(service) == []  # the check itself rolls the period over
    await spend.reserve(8)
    assert await fired(service) == [80]
    await spend.reserve(2)
    assert await fired(service) == [100]


async def test_refunds_lowering_the_spend_do_not_fire_again(
    service: BudgetService, spend: Spender
) -> None:
    await alerts_on(service, actor_id=ADMIN)
    jobs = await spend.reserve(8)
    assert await fired(service) == [80]

    await spend.refund(*jobs[:2])
    assert await fired(service) == []
    await spend.reserve(2)  # back at 80 %
    assert await fired(service) == []
    await spend.reserve(2)
    assert await fired(service) == [100]


async def test_a_budget_of_another_size_arms_the_thresholds_again(
    service: BudgetService, spend: Spender
) -> None:
    await alerts_on(service, actor_id=ADMIN)
    await spend.reserve(10)
    assert await fired(service) == [100]

    await service.add_credits(GUILD, 400, actor_id=ADMIN, may_raise=True)  # 400 of 800 used
    assert await fired(service) == []
    await spend.reserve(6)  # 640 of 800
    assert await fired(service) == [80]
    await spend.reserve(4)
    assert await fired(service) == [100]


async def test_a_budget_lowered_below_what_is_used_reports_it_exhausted(
    service: BudgetService, spend: Spender
) -> None:
    await alerts_on(service, actor_id=ADMIN)
    await spend.reserve(5)
    await service.set_budget(
        GUILD, credits=100, period=None, per_member=None, actor_id=ADMIN, may_raise=True
    )

    [alert] = await service.alerts_due(GUILD)

    assert alert.exhausted
    assert (alert.threshold_percent, alert.budget, alert.used, alert.remaining) == (
        100,
        100,
        200,
        0,
    )


# --- changing the threshold mid-period -----------------------------------------------------


async def test_a_threshold_set_below_the_spend_fires_at_the_next_check(
    service: BudgetService, spend: Spender
) -> None:
    await alerts_on(service, actor_id=ADMIN)
    await spend.reserve(7)  # 70 %
    assert await fired(service) == []

    await alerts_on(service, 50, actor_id=ADMIN)
    assert await fired(service) == [50]
    assert await fired(service) == []


async def test_a_lower_threshold_after_a_higher_one_was_sent_stays_quiet(
    service: BudgetService, spend: Spender, database: Database
) -> None:
    await alerts_on(service, actor_id=ADMIN)
    await spend.reserve(8)
    assert await fired(service) == [80]

    await alerts_on(service, 50, actor_id=ADMIN)
    assert await fired(service) == []  # claimed, but it would be stale news after 80 %
    assert await claims(database) == [(400, 50), (400, 80)]


async def test_a_raised_threshold_fires_when_reached(
    service: BudgetService, spend: Spender
) -> None:
    await alerts_on(service, 50, actor_id=ADMIN)
    await spend.reserve(5)
    assert await fired(service) == [50]

    await alerts_on(service, 90, actor_id=ADMIN)
    await spend.reserve(3)  # 80 %
    assert await fired(service) == []
    await spend.reserve(1)
    assert await fired(service) == [90]


# --- nothing to send -----------------------------------------------------------------------


async def test_without_settings_nothing_fires_and_it_costs_one_query(
    service: BudgetService, spend: Spender, database: Database
) -> None:
    await spend.reserve(10)

    with statements(database) as seen:
        assert await service.alerts_due(GUILD) == []

    assert len(seen) == 1, seen
    assert await claims(database) == []


async def test_turned_off_nothing_fires_and_turned_back_on_nothing_repeats(
    service: BudgetService, spend: Spender
) -> None:
    await alerts_on(service, actor_id=ADMIN)
    await spend.reserve(8)
    assert await fired(service) == [80]

    assert await service.disable_alerts(GUILD)
    await spend.reserve(2)
    assert await fired(service) == []

    await alerts_on(service, actor_id=ADMIN)
    assert await fired(service) == [100]  # not announced while off: it is still news
    await alerts_on(service, actor_id=ADMIN)
    assert await fired(service) == []


async def test_a_zero_budget_never_alerts(
    service: BudgetService, spend: Spender, database: Database
) -> None:
    await service.set_budget(
        GUILD, credits=0, period=None, per_member=None, actor_id=ADMIN, may_raise=True
    )
    await alerts_on(service, actor_id=ADMIN)
    with pytest.raises(BudgetRefused):
        await spend.reserve()

    assert await fired(service) == []
    assert await claims(database) == []


# --- several processes ---------------------------------------------------------------------


@pytest.mark.parametrize("videos", [8, 10])
async def test_concurrent_checks_claim_each_threshold_once(
    service: BudgetService, spend: Spender, database: Database, videos: int
) -> None:
    await alerts_on(service, actor_id=ADMIN)
    await spend.reserve(videos)

    results = await asyncio.gather(*(service.alerts_due(GUILD) for _ in range(10)))

    sent = [alert.threshold_percent for alerts in results for alert in alerts]
    assert sent == [80 if videos == 8 else 100]
    assert await claims(database) == [(400, 80)] + ([(400, 100)] if videos == 10 else [])


async def test_racing_members_get_one_alert_per_threshold_at_most(
    service: BudgetService, budgets: Budgets, database: Database
) -> None:
    await alerts_on(service, actor_id=ADMIN)

    async def imagine(number: int) -> list[int]:
        try:
            async with database.transaction() as session:
                await budgets.reserve(
                    session, guild_id=GUILD, member_id=number, cost=VIDEO, job_id=f"j{number}"
                )
        except BudgetRefused:
            return []
        return await fired(service)

    results = await asyncio.gather(*(imagine(number) for number in range(20)))

    sent = [threshold for thresholds in results for threshold in thresholds]
    assert sent.count(100) == 1
    assert sent.count(80) <= 1  # none when every reservation landed before the first check
    assert await claims(database) == [(400, 80), (400, 100)]


# --- burn rate and run-out -----------------------------------------------------------------


async def test_burn_rate_is_the_last_24_hours_of_use_net_of_what_came_back(
    service: BudgetService, spend: Spender, clock: FakeClock
) -> None:
    await alerts_on(service, 50, actor_id=ADMIN)
    await spend.reserve()  # more than 24 hours before the check: not counted
    await clock.advance(12 * 3600)
    jobs = await spend.reserve(5)
    await spend.refund(jobs[4])  # gives 40 back
    await spend.settle(jobs[3], consumed=30)  # gives 10 back
    await clock.advance(13 * 3600)
    await spend.reserve()

    [alert] = await service.alerts_due(GUILD)

    now = clock.now()
    burnt = 5 * VIDEO - VIDEO - 10 + VIDEO
    assert (alert.threshold_percent, alert.used, alert.remaining) == (50, 230, 170)
    assert alert.burn_since == now - timedelta(hours=24)
    assert alert.burn_per_hour == pytest.approx(burnt / 24)
    assert alert.runs_out_at is not None
    assert (alert.runs_out_at - now) / HOUR == pytest.approx(170 / (burnt / 24))


async def test_burn_rate_of_a_period_younger_than_a_day_counts_from_its_start(
    service: BudgetService, spend: Spender, clock: FakeClock
) -> None:
    started = clock.now()
    await service.set_budget(
        GUILD, credits=400, period="daily", per_member=None, actor_id=ADMIN, may_raise=True
    )  # a period change starts the new period now
    await alerts_on(service, actor_id=ADMIN)
    await clock.advance(3 * 3600)
    await spend.reserve(8)

    [alert] = await service.alerts_due(GUILD)

    assert alert.burn_since == started
    assert alert.burn_per_hour == pytest.approx(320 / 3)
    assert alert.runs_out_at == clock.now() + timedelta(minutes=45)
    assert alert.resets_at == datetime(2026, 1, 6, tzinfo=UTC)


async def test_a_burst_in_a_periods_first_minutes_is_spread_over_an_hour(
    service: BudgetService, spend: Spender, clock: FakeClock
) -> None:
    await service.set_budget(
        GUILD, credits=400, period="daily", per_member=None, actor_id=ADMIN, may_raise=True
    )
    await alerts_on(service, actor_id=ADMIN)
    await clock.advance(600)
    await spend.reserve(8)

    [alert] = await service.alerts_due(GUILD)

    assert alert.burn_per_hour == pytest.approx(320)
    assert alert.runs_out_at == clock.now() + timedelta(minutes=15)


async def test_without_use_in_the_window_there_is_no_run_out_estimate(
    service: BudgetService, spend: Spender, clock: FakeClock
) -> None:
    await spend.reserve(8)
    await clock.advance(25 * 3600)
    await alerts_on(service, actor_id=ADMIN)

    [alert] = await service.alerts_due(GUILD)

    assert (alert.threshold_percent, alert.burn_per_hour, alert.runs_out_at) == (80, 0.0, None)
