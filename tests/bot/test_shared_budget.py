"""The API key's rate budget shared through the database, on real SQLite and PostgreSQL.

Time is a FakeClock: every statement gets its ``now()``, so a frozen clock means that nothing
refills while a test takes, and advancing it refills exactly what the test expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from sqlalchemy import Connection, inspect, text

from bot.db import Database
from bot.shared_budget import SharedRateBudget, budget_key
from tests.support.clock import FakeClock

# Waits are rounded up to the millisecond, plus one (SQLite counts whole milliseconds).
WAIT_SLACK = 0.0021

MakeBudget = Callable[..., SharedRateBudget]


@pytest.fixture
async def make_budget(database: Database, clock: FakeClock) -> AsyncIterator[MakeBudget]:
    """Budgets on the test's database (or another ``Database``), closed after the test."""
    made: list[SharedRateBudget] = []

    def make(
        per_minute: int = 30, *, db: Database | None = None, key: str = "grok"
    ) -> SharedRateBudget:
        budget = SharedRateBudget(db or database, key=key, per_minute=per_minute, clock=clock)
        made.append(budget)
        return budget

    yield make
    for budget in made:
        await budget.close()


async def take_all(budget: SharedRateBudget, *, keep_free: int = 0) -> int:
    """Take until refused; how many were taken."""
    taken = 0
    while await budget.take(keep_free=keep_free) == 0.0:
        taken += 1
    return taken


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait in real time (database I/O is real) until ``predicate()`` holds."""
    async with asyncio.timeout(5.0):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


@pytest.mark.parametrize("per_minute", [30, 7])
async def test_a_full_bucket_allows_capacity_takes_then_one_per_refill(
    make_budget: MakeBudget, clock: FakeClock, per_minute: int
) -> None:
    budget = make_budget(per_minute)

    for _ in range(per_minute):
        assert await budget.take() == 0.0
    wait = await budget.take()

    one_token = 60.0 / per_minute
    assert one_token <= wait <= one_token + WAIT_SLACK
    await clock.advance(wait / 2)
    assert await budget.take() > 0.0  # half a token is not a token
    await clock.advance(wait / 2)
    assert await budget.take() == 0.0
    assert 0.0 < await budget.take() <= one_token + WAIT_SLACK
    assert await budget.remaining() == pytest.approx(0.0, abs=1e-3)


async def test_the_bucket_refills_up_to_capacity_only(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(30)
    assert await take_all(budget) == 30
    await clock.advance(10.0)  # 5 tokens
    assert await budget.remaining() == pytest.approx(5.0)
    await clock.advance(3600.0)
    assert await budget.remaining() == pytest.approx(30.0)
    assert await take_all(budget) == 30


async def test_background_keeps_headroom_that_foreground_may_use(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(30)

    assert await take_all(budget, keep_free=10) == 20
    wait = await budget.take(keep_free=10)
    assert 2.0 <= wait <= 2.0 + WAIT_SLACK  # until 11 tokens: one more refill
    assert await take_all(budget) == 10  # foreground takes the headroom
    assert 22.0 <= await budget.take(keep_free=10) <= 22.0 + WAIT_SLACK  # 11 tokens from 0

    await clock.advance(22.0 + WAIT_SLACK)
    assert await budget.take(keep_free=10) == 0.0


async def test_a_headroom_of_the_whole_plan_waits_for_a_full_bucket(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(5)
    assert await budget.take(keep_free=100) == 0.0  # capped at capacity - 1: full is enough
    assert 12.0 <= await budget.take(keep_free=100) <= 12.0 + WAIT_SLACK
    await clock.advance(12.0 + WAIT_SLACK)
    assert await budget.take(keep_free=100) == 0.0


async def test_concurrent_takers_in_two_processes_never_overspend(
    database_url: str, clock: FakeClock
) -> None:
    """Two engines (two "processes"), five budgets each (five connections), 20 takes each."""
    first, second = Database.from_url(database_url), Database.from_url(database_url)
    budgets = [
        SharedRateBudget(db, key="shared", per_minute=30, clock=clock)
        for db in (first, second)
        for _ in range(5)
    ]
    try:
        await first.upgrade()
        for _round in range(4):
            # Frozen clock: nothing refills while the 40 takes race for 30 tokens.
            waits = await asyncio.gather(*(budgets[i % len(budgets)].take() for i in range(40)))
            assert sum(wait == 0.0 for wait in waits) == 30
            assert all(wait == 0.0 or 2.0 <= wait <= 2.0 + WAIT_SLACK for wait in waits)
            assert await budgets[0].remaining() == pytest.approx(0.0, abs=1e-9)
            await clock.advance(60.0)  # a full bucket for the next round
    finally:
        for budget in budgets:
            await budget.close()
        await first.dispose()
        await second.dispose()


async def test_a_block_stops_every_taker_and_only_ever_moves_later(
    database: Database, make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(30)
    other_process = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    other = make_budget(30, db=other_process)
    try:
        assert await budget.take() == 0.0

        await other.block_until(clock.now() + timedelta(seconds=10))
        assert 10.0 <= await budget.take() <= 10.0 + WAIT_SLACK
        assert 10.0 <= await other.take() <= 10.0 + WAIT_SLACK
        assert await budget.remaining() == 0.0

        await budget.block_until(clock.now() + timedelta(seconds=5))  # older news: no effect
        assert 10.0 <= await other.take() <= 10.0 + WAIT_SLACK
        await budget.block_until(clock.now() + timedelta(seconds=20))  # extends
        assert 20.0 <= await other.take() <= 20.0 + WAIT_SLACK

        await clock.advance(19.9)
        assert 0.1 <= await budget.take() <= 0.1 + WAIT_SLACK
        await clock.advance(0.1)
        assert await budget.take() == 0.0
        assert await other.take() == 0.0
        assert await budget.remaining() == pytest.approx(28.0)  # refilled to 30 while blocked
    finally:
        await other.close()
        await other_process.dispose()


async def test_a_block_and_an_empty_bucket_wait_for_the_later(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(6)  # one token every 10 s
    assert await take_all(budget) == 6
    await budget.block_until(clock.now() + timedelta(seconds=4))
    assert 10.0 <= await budget.take() <= 10.0 + WAIT_SLACK  # the refill is later
    await budget.block_until(clock.now() + timedelta(seconds=25))
    assert 25.0 <= await budget.take() <= 25.0 + WAIT_SLACK  # the block is later


async def test_correct_lowers_but_never_raises_the_level(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(60)  # one token a second
    for _ in range(5):
        assert await budget.take() == 0.0

    await budget.correct(100)
    assert await budget.remaining() == pytest.approx(55.0)
    await budget.correct(3)
    assert await budget.remaining() == pytest.approx(3.0)
    await budget.correct(-2)  # nonsense headers mean nothing is left, not less than nothing
    assert await budget.remaining() == pytest.approx(0.0)

    # The refill restarts at the correction: 10 s before it add nothing afterwards.
    assert await take_all(budget) == 0
    await clock.advance(10.0)
    await budget.correct(4)
    await clock.advance(1.0)
    assert await budget.remaining() == pytest.approx(5.0)
    assert await take_all(budget) == 5


async def test_ensure_adopts_a_changed_plan(make_budget: MakeBudget, clock: FakeClock) -> None:
    await make_budget(30).ensure()
    await make_budget(30).ensure()  # another process, same plan: nothing changes
    assert await take_all(make_budget(30), keep_free=5) == 25

    smaller = make_budget(10)
    await smaller.ensure()
    assert await smaller.remaining() == pytest.approx(5.0)  # 5 left fit in the smaller plan
    assert await take_all(smaller) == 5
    assert 6.0 <= await smaller.take() <= 6.0 + WAIT_SLACK  # refills at 10 a minute now

    larger = make_budget(100)
    await larger.ensure()
    assert await larger.remaining() == pytest.approx(0.0)  # a larger plan is not a refill
    await clock.advance(0.6)
    assert await larger.take() == 0.0  # 100 a minute: one token in 0.6 s

    full = make_budget(5, key="other")
    await full.ensure()
    await make_budget(3, key="other").ensure()
    assert await full.remaining() == pytest.approx(3.0)  # clamped to the new capacity


async def test_keys_are_separate_budgets_and_never_the_api_key(make_budget: MakeBudget) -> None:
    key = budget_key("xai-secret-api-key")
    assert "secret" not in key
    assert len(key) <= 64
    assert key == budget_key("xai-secret-api-key") != budget_key("another-key")

    first, second = make_budget(2, key=key), make_budget(2, key=budget_key("another-key"))
    assert await take_all(first) == 2
    assert await take_all(second) == 2


async def test_acquire_sleeps_until_a_token_refills(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(2)  # one token every 30 s
    await budget.acquire()
    await budget.acquire()

    waiting = asyncio.create_task(budget.acquire())
    await eventually(lambda: clock.sleepers == 1)
    assert not waiting.done()
    await clock.advance(30.0 + WAIT_SLACK)
    await asyncio.wait_for(waiting, timeout=5)

    cancelled = asyncio.create_task(budget.acquire())
    await eventually(lambda: clock.sleepers == 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await clock.advance(30.0 + WAIT_SLACK)
    assert await budget.take() == 0.0  # the cancelled waiter took nothing


async def test_callers_of_one_process_take_turns_submissions_first(
    make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(60)  # a token a second
    assert await take_all(budget) == 60
    assert budget.estimate() == 0
    granted: list[str] = []

    async def caller(name: str, keep_free: int) -> None:
        await budget.acquire(keep_free=keep_free)
        granted.append(name)

    callers = []
    for name, keep_free in [("status 1", 1), ("submit 1", 0), ("submit 2", 0), ("status 2", 1)]:
        callers.append(asyncio.create_task(caller(name, keep_free)))
        await clock.settle()
    await eventually(lambda: budget.waiting == 4 and clock.sleepers > 0)
    while len(granted) < 4:
        await clock.advance(0.5)
        await eventually(lambda: clock.sleepers > 0 or len(granted) == 4)
    # Submissions first, then the two kinds alternate; each kind in arrival order. Polling
    # the bucket each on its own, both submissions (one token) would beat both status checks
    # (which leave one free).
    assert granted == ["submit 1", "status 1", "submit 2", "status 2"]
    await asyncio.gather(*callers)
    assert budget.waiting == 0


async def test_a_deleted_row_is_recreated(
    database: Database, make_budget: MakeBudget, clock: FakeClock
) -> None:
    budget = make_budget(3)
    assert await take_all(budget) == 3
    async with database.engine.begin() as connection:
        await connection.execute(text("DELETE FROM rate_budget"))
    assert 0.0 < await budget.take() < 0.1
    assert await take_all(budget) == 3


@pytest.mark.postgres
async def test_a_dropped_connection_is_replaced(
    database: Database, make_budget: MakeBudget
) -> None:
    if database.dialect_name != "postgresql":
        pytest.skip("PostgreSQL only: the budget holds a connection the server may drop")
    budget = make_budget(30)
    assert await budget.take() == 0.0
    async with database.engine.connect() as connection:
        killed = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert killed >= 1
    assert await budget.take() == 0.0
    assert await budget.remaining() == pytest.approx(28.0)


async def test_the_migration_adds_and_removes_the_table(database_url: str) -> None:
    def names(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    database = Database.from_url(database_url)
    try:
        await database.upgrade("0003")
        async with database.engine.connect() as connection:
            assert "rate_budget" not in await connection.run_sync(names)
        await database.upgrade("0004")
        assert await database.current_revision() == "0004"
        async with database.engine.connect() as connection:
            assert "rate_budget" in await connection.run_sync(names)
        await database.downgrade("0003")
        assert await database.current_revision() == "0003"
        async with database.engine.connect() as connection:
            assert "rate_budget" not in await connection.run_sync(names)
    finally:
        await database.dispose()
