"""The job store against real databases: the state machine, races, due-job claiming."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event

from bot.db import Database
from bot.jobs import (
    TERMINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    JobState,
    JobStore,
    NewJob,
)
from bot.models import Job
from tests.support.clock import FakeClock

GUILD = 1_100_000_000_000_000_001
CHANNEL = 1_100_000_000_000_000_002
MEMBER = 1_100_000_000_000_000_003


@pytest.fixture
def jobs(clock: FakeClock) -> JobStore:
    return JobStore(clock=clock)


def new_job(**overrides: Any) -> NewJob:
    fields: dict[str, Any] = {
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "member_id": MEMBER,
        "locale": "de",
        "prompt": "Ein Fuchs tanzt im Schnee 🦊",
        "mode": "normal",
        "ratio": "16:9",
        "image_urls": ("https://cdn.example/a.png",),
        "progress_message_id": 1_100_000_000_000_000_004,
        "interaction_token": "t" * 200,
        "interaction_expires_at": datetime(2026, 1, 5, 12, 15, tzinfo=UTC),
        "upload_limit_bytes": 10 * 1024 * 1024,
        "cost": 40,
    }
    return NewJob(**(fields | overrides))


async def create(
    database: Database, jobs: JobStore, *, next_poll_at: datetime, **overrides: Any
) -> Job:
    async with database.transaction() as session:
        return await jobs.create(session, new_job(**overrides), next_poll_at=next_poll_at)


async def get(database: Database, jobs: JobStore, job_id: str) -> Job:
    async with database.transaction() as session:
        job = await jobs.get(session, job_id)
    assert job is not None
    return job


async def transition(
    database: Database,
    jobs: JobStore,
    job_id: str,
    from_state: JobState,
    to_state: JobState,
    **fields: Any,
) -> bool:
    async with database.transaction() as session:
        return await jobs.transition(session, job_id, from_state, to_state, **fields)


def test_the_state_machine_has_no_way_out_of_a_terminal_state() -> None:
    assert TERMINAL_STATES.isdisjoint(TRANSITIONS)
    reachable = {JobState.CREATED} | {s for targets in TRANSITIONS.values() for s in targets}
    assert reachable == set(JobState)


async def test_a_created_job_round_trips(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    due = clock.now() + timedelta(seconds=5)
    created = await create(database, jobs, next_poll_at=due, reroll_of="a" * 32)

    job = await get(database, jobs, created.id)

    assert job.state == JobState.CREATED
    assert len(job.id) == 32
    assert len(job.idempotency_key) == 32
    assert job.idempotency_key != job.id
    assert (job.guild_id, job.channel_id, job.member_id) == (GUILD, CHANNEL, MEMBER)
    assert job.prompt == "Ein Fuchs tanzt im Schnee 🦊"
    assert job.image_urls == ["https://cdn.example/a.png"]
    assert job.video_urls == []
    assert (job.created_at, job.updated_at, job.next_poll_at) == (clock.now(), clock.now(), due)
    assert job.interaction_expires_at == datetime(2026, 1, 5, 12, 15, tzinfo=UTC)
    assert job.created_at.tzinfo is UTC
    assert (job.poll_count, job.delivery_attempts, job.task_id) == (0, 0, None)
    assert job.reroll_of == "a" * 32
    async with database.transaction() as session:
        assert await jobs.get(session, "missing") is None


async def test_transitions_write_their_fields(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    job = await create(database, jobs, next_poll_at=clock.now())
    await clock.advance(3)
    assert await transition(database, jobs, job.id, JobState.CREATED, JobState.SUBMITTING)
    submitted_at = datetime(2026, 1, 5, 14, 0, 3, tzinfo=timezone(timedelta(hours=2)))
    assert await transition(
        database,
        jobs,
        job.id,
        JobState.SUBMITTING,
        JobState.RUNNING,
        task_id="task-1",
        submitted_at=submitted_at,
    )

    running = await get(database, jobs, job.id)
    assert (running.state, running.task_id) == (JobState.RUNNING, "task-1")
    assert running.submitted_at == clock.now()
    assert running.submitted_at.tzinfo is UTC
    assert running.updated_at == clock.now()

    await clock.advance(60)
    assert await transition(
        database,
        jobs,
        job.id,
        JobState.RUNNING,
        JobState.DELIVERING,
        video_urls=["https://cdn.example/v.mp4"],
        consumed_credits=40,
        completed_at=clock.now(),
        estimated_duration=61.5,
    )
    assert await transition(
        database,
        jobs,
        job.id,
        JobState.DELIVERING,
        JobState.DELIVERED,
        interaction_token=None,
        delivered_at=clock.now(),
        result_message_id=2**62,
    )
    delivered = await get(database, jobs, job.id)
    assert delivered.video_urls == ["https://cdn.example/v.mp4"]
    assert (delivered.interaction_token, delivered.result_message_id) == (None, 2**62)
    assert delivered.estimated_duration == 61.5


@pytest.mark.parametrize(
    ("from_state", "to_state"),
    [
        (JobState.CREATED, JobState.RUNNING),
        (JobState.SUBMITTING, JobState.CREATED),
        (JobState.RUNNING, JobState.REJECTED),
        (JobState.DELIVERED, JobState.FAILED),
        (JobState.FAILED, JobState.CREATED),
    ],
)
async def test_illegal_transitions_are_refused(
    database: Database, jobs: JobStore, clock: FakeClock, from_state: JobState, to_state: JobState
) -> None:
    job = await create(database, jobs, next_poll_at=clock.now())

    with pytest.raises(IllegalTransition):
        await transition(database, jobs, job.id, from_state, to_state)

    assert (await get(database, jobs, job.id)).state == JobState.CREATED


async def test_a_stale_transition_returns_false_and_changes_nothing(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    job = await create(database, jobs, next_poll_at=clock.now())
    assert await transition(database, jobs, job.id, JobState.CREATED, JobState.SUBMITTING)

    assert not await transition(
        database, jobs, job.id, JobState.CREATED, JobState.FAILED, error_code="stale"
    )
    assert not await transition(database, jobs, "missing", JobState.CREATED, JobState.SUBMITTING)
    unchanged = await get(database, jobs, job.id)
    assert (unchanged.state, unchanged.error_code) == (JobState.SUBMITTING, None)


async def test_fields_the_store_owns_cannot_be_written(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    job = await create(database, jobs, next_poll_at=clock.now())
    async with database.transaction() as session:
        for fields in ({"state": "delivered"}, {"id": "x"}, {"no_such_column": 1}):
            with pytest.raises(ValueError, match="cannot write"):
                await jobs.update_fields(session, job.id, JobState.CREATED, **fields)


async def test_two_concurrent_transitions_from_one_state_have_one_winner(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    job = await create(database, jobs, next_poll_at=clock.now())

    outcomes = await asyncio.gather(
        transition(database, jobs, job.id, JobState.CREATED, JobState.SUBMITTING),
        transition(database, jobs, job.id, JobState.CREATED, JobState.FAILED, error_code="lost"),
        transition(database, jobs, job.id, JobState.CREATED, JobState.SUBMITTING),
    )

    assert outcomes.count(True) == 1
    final = await get(database, jobs, job.id)
    winner = [JobState.SUBMITTING, JobState.FAILED, JobState.SUBMITTING][outcomes.index(True)]
    assert final.state == winner
    assert final.error_code == ("lost" if winner == JobState.FAILED else None)


async def test_update_fields_is_conditional_on_the_state(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    job = await create(database, jobs, next_poll_at=clock.now())
    later = clock.now() + timedelta(seconds=30)

    async with database.transaction() as session:
        assert await jobs.update_fields(
            session,
            job.id,
            JobState.CREATED,
            next_poll_at=later,
            poll_count=1,
            progress_message_id=2**61,
        )
        assert not await jobs.update_fields(session, job.id, JobState.RUNNING, poll_count=99)

    updated = await get(database, jobs, job.id)
    assert (updated.state, updated.next_poll_at, updated.poll_count) == (
        JobState.CREATED,
        later,
        1,
    )
    assert updated.progress_message_id == 2**61


async def test_claims_take_due_jobs_earliest_first_and_only_while_active(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    now = clock.now()
    late = await create(database, jobs, next_poll_at=now - timedelta(seconds=10))
    early = await create(database, jobs, next_poll_at=now - timedelta(seconds=20))
    on_time = await create(database, jobs, next_poll_at=now)
    await create(database, jobs, next_poll_at=now + timedelta(seconds=1))
    submitting = await create(database, jobs, next_poll_at=now - timedelta(seconds=30))
    assert await transition(database, jobs, submitting.id, JobState.CREATED, JobState.SUBMITTING)
    failed = await create(database, jobs, next_poll_at=now - timedelta(seconds=40))
    assert await transition(database, jobs, failed.id, JobState.CREATED, JobState.FAILED)

    async def claim(limit: int, **options: Any) -> list[str]:
        async with database.transaction() as session:
            claimed = await jobs.claim_due(session, now, limit, lease_seconds=60, **options)
        return [job.id for job in claimed]

    # Each claim leases what it took, so the next one goes on where it stopped.
    assert await claim(1, states=[JobState.CREATED]) == [early.id]
    # A stale submission is due too: its unknown outcome needs deciding.
    assert await claim(2) == [submitting.id, late.id]
    assert await claim(10) == [on_time.id]


async def test_claims_use_the_state_and_next_poll_index(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    await create(database, jobs, next_poll_at=clock.now())
    statements: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with database.transaction() as session:
            assert len(await jobs.claim_due(session, clock.now(), 5, lease_seconds=60)) == 1
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    [(statement, parameters)] = statements

    async with database.engine.begin() as connection:
        if database.dialect_name == "sqlite":
            explain = "EXPLAIN QUERY PLAN"
        else:
            # A one-row table is cheapest to scan; forbid that to see whether the index fits.
            await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN"
        plan = await connection.exec_driver_sql(f"{explain} {statement}", parameters)
        details = " ".join(str(row[-1]) for row in plan.all())

    assert "ix_job_state_next_poll_at" in details, details
    assert "SCAN job" not in details, details


async def test_concurrent_claimers_never_share_a_job(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    for i in range(20):
        await create(database, jobs, next_poll_at=clock.now() - timedelta(seconds=i))

    async def claim() -> list[str]:
        async with database.transaction() as session:
            claimed = await jobs.claim_due(session, clock.now(), limit=8, lease_seconds=60)
        return [job.id for job in claimed]

    claims = await asyncio.gather(*(claim() for _ in range(4)))

    claimed = [job_id for batch in claims for job_id in batch]
    assert len(claimed) == len(set(claimed)) == 20
    assert all(len(batch) <= 8 for batch in claims)

    async with database.transaction() as session:
        assert await jobs.claim_due(session, clock.now(), 50, lease_seconds=60) == []
    await clock.advance(60)
    async with database.transaction() as session:
        reclaimed = await jobs.claim_due(session, clock.now(), limit=50, lease_seconds=60)
    assert {job.id for job in reclaimed} == set(claimed)
    assert {job.next_poll_at for job in reclaimed} == {clock.now() + timedelta(seconds=60)}


async def test_a_claimer_skips_rows_another_claimer_holds(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    if database.dialect_name != "postgresql":
        pytest.skip("SQLite admits one writer at a time; overlapping claims need row locks")
    for i in range(6):
        await create(database, jobs, next_poll_at=clock.now() - timedelta(seconds=i))

    async with database.transaction() as first_session:
        first = await jobs.claim_due(first_session, clock.now(), limit=4, lease_seconds=60)
        # The first claim is not committed yet: its rows are locked, not yet pushed ahead.
        async with database.transaction() as second_session:
            second = await jobs.claim_due(second_session, clock.now(), limit=4, lease_seconds=60)

    assert len(first) == 4
    assert len(second) == 2
    assert {j.id for j in first}.isdisjoint(j.id for j in second)


async def test_counts_by_state(database: Database, jobs: JobStore, clock: FakeClock) -> None:
    await create(database, jobs, next_poll_at=clock.now())
    await clock.advance(1)
    submitting = await create(database, jobs, next_poll_at=clock.now())
    assert await transition(database, jobs, submitting.id, JobState.CREATED, JobState.SUBMITTING)
    failed = await create(database, jobs, next_poll_at=clock.now())
    assert await transition(database, jobs, failed.id, JobState.CREATED, JobState.FAILED)

    async with database.transaction() as session:
        counts = await jobs.count_by_state(session)

    assert counts == dict.fromkeys(JobState, 0) | {
        JobState.CREATED: 1,
        JobState.SUBMITTING: 1,
        JobState.FAILED: 1,
    }


async def test_recent_durations_are_the_newest_delivered_first(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    async def deliver(duration: float | None) -> None:
        job = await create(database, jobs, next_poll_at=clock.now())
        for from_state, to_state in [
            (JobState.CREATED, JobState.SUBMITTING),
            (JobState.SUBMITTING, JobState.RUNNING),
        ]:
            assert await transition(database, jobs, job.id, from_state, to_state)
        assert await transition(
            database,
            jobs,
            job.id,
            JobState.RUNNING,
            JobState.DELIVERING,
            completed_at=clock.now(),
            estimated_duration=duration,
        )
        assert await transition(database, jobs, job.id, JobState.DELIVERING, JobState.DELIVERED)
        await clock.advance(10)

    for duration in (100.0, None, 120.0, 90.0):
        await deliver(duration)
    unfinished = await create(database, jobs, next_poll_at=clock.now())
    assert await transition(database, jobs, unfinished.id, JobState.CREATED, JobState.FAILED)

    async with database.transaction() as session:
        assert await jobs.recent_durations(session) == [90.0, 120.0, 100.0]
        assert await jobs.recent_durations(session, limit=2) == [90.0, 120.0]


async def test_next_due_at_and_running_jobs_per_guild(
    database: Database, jobs: JobStore, clock: FakeClock
) -> None:
    async with database.transaction() as session:
        assert await jobs.next_due_at(session) is None
        assert await jobs.running_by_guild(session) == {}
    soon = clock.now() + timedelta(seconds=30)
    later = clock.now() + timedelta(seconds=90)
    for guild_id, next_poll_at in [(1, later), (2, soon), (2, later)]:
        job = await create(database, jobs, next_poll_at=next_poll_at, guild_id=guild_id)
        assert await transition(database, jobs, job.id, JobState.CREATED, JobState.SUBMITTING)
        assert await transition(database, jobs, job.id, JobState.SUBMITTING, JobState.RUNNING)
    await create(database, jobs, next_poll_at=clock.now(), guild_id=3)

    async with database.transaction() as session:
        assert await jobs.next_due_at(session) == clock.now()
        assert await jobs.next_due_at(session, [JobState.RUNNING]) == soon
        assert await jobs.running_by_guild(session) == {1: 1, 2: 2}
