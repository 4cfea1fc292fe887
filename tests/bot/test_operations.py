"""Operator use cases against real databases: the status report's figures, the online backup."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.budget import Budgets, Period, ReservationState
from bot.db import Database
from bot.jobs import JobState, JobStore, NewJob
from bot.models import Job, Reservation
from bot.operations import (
    NO_SCHEMA,
    BackupRefused,
    GuildSpend,
    RunningJob,
    StatusReport,
    UnknownOutcome,
    backup_sqlite,
    format_duration,
    format_status,
    head_revision,
    pg_dump_command,
    schema_problem,
    status_report,
)
from tests.support.clock import FakeClock
from tests.support.jobs import new_job as support_new_job
from tests.support.ledger import ledger_problems

GUILD_A = 1_100_000_000_000_000_001
GUILD_B = 1_100_000_000_000_000_002
GUILD_C = 1_100_000_000_000_000_003
CHANNEL = 1_100_000_000_000_000_010
MEMBER = 1_100_000_000_000_000_020
ADMIN = 1_100_000_000_000_000_999
COST = 40
YESTERDAY_EVENING = datetime(2026, 1, 4, 22, 0, tzinfo=UTC)
TODAY = datetime(2026, 1, 5, tzinfo=UTC)


def new_job(guild_id: int, cost: int = COST) -> NewJob:
    return support_new_job(guild_id=guild_id, channel_id=CHANNEL, member_id=MEMBER, cost=cost)


@dataclass
class World:
    """Jobs and budgets moved the way ImagineService moves them, money with each step."""

    database: Database
    clock: FakeClock
    jobs: JobStore
    budgets: Budgets

    async def start(self, guild_id: int) -> str:
        """A job recorded with its credits reserved, in one transaction."""
        async with self.database.transaction() as session:
            job = await self.jobs.create(session, new_job(guild_id), next_poll_at=self.clock.now())
            await self.budgets.reserve(
                session, guild_id=guild_id, member_id=MEMBER, cost=COST, job_id=job.id
            )
        return job.id

    async def step(self, job_id: str, from_state: JobState, to_state: JobState, **fields: Any):
        async with self.database.transaction() as session:
            assert await self.jobs.transition(session, job_id, from_state, to_state, **fields)

    async def running(self, guild_id: int, task_id: str) -> str:
        job_id = await self.start(guild_id)
        await self.step(job_id, JobState.CREATED, JobState.SUBMITTING)
        await self.step(
            job_id,
            JobState.SUBMITTING,
            JobState.RUNNING,
            task_id=task_id,
            submitted_at=self.clock.now(),
        )
        return job_id

    async def delivered(self, guild_id: int, task_id: str, consumed: int) -> str:
        job_id = await self.running(guild_id, task_id)
        await self.step(job_id, JobState.RUNNING, JobState.DELIVERING, consumed_credits=consumed)
        async with self.database.transaction() as session:
            assert await self.jobs.transition(
                session, job_id, JobState.DELIVERING, JobState.DELIVERED
            )
            await self.budgets.settle(session, job_id, consumed)
        return job_id

    async def end(
        self, job_id: str, from_state: JobState, to_state: JobState, reason: str, **fields: Any
    ) -> None:
        """Ended without a video: refunded in the same transaction."""
        async with self.database.transaction() as session:
            assert await self.jobs.transition(
                session, job_id, from_state, to_state, error_code=reason, **fields
            )
            await self.budgets.refund(session, job_id)

    async def job(self, job_id: str) -> Job:
        async with self.database.transaction() as session:
            job = await self.jobs.get(session, job_id)
        assert job is not None
        return job


@pytest.fixture
def world(database: Database) -> World:
    clock = FakeClock(start=YESTERDAY_EVENING)
    return World(
        database=database,
        clock=clock,
        jobs=JobStore(clock=clock),
        budgets=Budgets(default_guild_credits=10 * COST, clock=clock),
    )


async def populate(world: World) -> dict[str, str]:
    """A day and a bit of traffic over three servers; returns the job ids by name."""
    ids: dict[str, str] = {}
    # Yesterday evening: B moves to a monthly budget of 500 (its period starts now).
    async with world.database.transaction() as session:
        await world.budgets.set_budget(
            session,
            GUILD_B,
            credits=500,
            period=Period.MONTHLY,
            member_cap=None,
            actor_id=ADMIN,
            may_raise=True,
        )
    ids["a1"] = await world.delivered(GUILD_A, "task-a1", consumed=40)
    # Made, paid for by the operator, but never posted: refunded, so the operator's loss.
    ids["a2"] = await world.running(GUILD_A, "task-a2")
    await world.step(ids["a2"], JobState.RUNNING, JobState.DELIVERING, consumed_credits=40)
    await world.end(ids["a2"], JobState.DELIVERING, JobState.FAILED, "delivery_failed")
    ids["b1"] = await world.start(GUILD_B)
    await world.step(ids["b1"], JobState.CREATED, JobState.SUBMITTING)
    await world.end(ids["b1"], JobState.SUBMITTING, JobState.FAILED, "outcome_unknown")

    await world.clock.advance((TODAY + timedelta(hours=10) - world.clock.now()).total_seconds())
    ids["a3"] = await world.delivered(GUILD_A, "task-a3", consumed=30)
    ids["b2"] = await world.delivered(GUILD_B, "task-b2", consumed=40)
    ids["b3"] = await world.running(GUILD_B, "task-b3")
    await world.end(ids["b3"], JobState.RUNNING, JobState.EXPIRED, "expired", consumed_credits=25)
    # A rejected job never ran: whatever it says it consumed is no loss.
    ids["b4"] = await world.start(GUILD_B)
    await world.step(ids["b4"], JobState.CREATED, JobState.SUBMITTING)
    await world.end(
        ids["b4"], JobState.SUBMITTING, JobState.REJECTED, "rejected", consumed_credits=40
    )
    ids["c3"] = await world.running(GUILD_C, "task-c3")
    await world.end(ids["c3"], JobState.RUNNING, JobState.FAILED, "generation_failed")

    await world.clock.advance(30 * 60)  # 10:30
    ids["c1"] = await world.running(GUILD_C, "task-c1")
    await world.clock.advance(45 * 60)  # 11:15
    ids["a4"] = await world.running(GUILD_A, "task-a4")
    ids["c2"] = await world.start(GUILD_C)
    await world.clock.advance(15 * 60)  # 11:30
    ids["a5"] = await world.start(GUILD_A)
    await world.step(ids["a5"], JobState.CREATED, JobState.SUBMITTING)
    await world.end(ids["a5"], JobState.SUBMITTING, JobState.FAILED, "outcome_unknown")
    await world.clock.advance(30 * 60)  # 12:00
    return ids


async def test_the_report_has_every_figure(world: World) -> None:
    ids = await populate(world)
    a5, b1 = await world.job(ids["a5"]), await world.job(ids["b1"])

    report = await status_report(world.database, world.clock)

    assert report.generated_at == TODAY + timedelta(hours=12)
    assert report.today_start == TODAY
    assert report.jobs_by_state == {
        JobState.CREATED: 1,  # c2
        JobState.SUBMITTING: 0,
        JobState.RUNNING: 2,  # c1, a4
        JobState.DELIVERING: 0,
        JobState.DELIVERED: 3,  # a1, a3, b2
        JobState.REJECTED: 1,  # b4
        JobState.FAILED: 4,  # a2, b1, c3, a5
        JobState.EXPIRED: 1,  # b3
        JobState.CANCELLED: 0,
    }
    assert report.active_jobs == 3
    assert report.oldest_running == RunningJob(
        job_id=ids["c1"],
        guild_id=GUILD_C,
        task_id="task-c1",
        submitted_at=TODAY + timedelta(hours=10, minutes=30),
        running_for=timedelta(hours=1, minutes=30),
    )
    assert (report.spent_today, report.settled_today) == (30 + 40, 2)  # a3, b2
    assert (report.spent_this_period, report.guilds) == (40 + 30 + 40, 3)
    assert report.top_guilds == (
        GuildSpend(GUILD_A, spent=70, balance=400 - 70 - COST, limit=400, period="none"),
        GuildSpend(GUILD_B, spent=40, balance=500 - 40, limit=500, period="monthly"),
    )  # C spent nothing (c1 and c2 are held, not spent)
    assert (report.loss_total, report.loss_today, report.loss_jobs) == (40 + 25, 25, 2)
    assert report.unknown_outcomes == (
        UnknownOutcome(a5.idempotency_key, ids["a5"], GUILD_A, a5.created_at),
        UnknownOutcome(b1.idempotency_key, ids["b1"], GUILD_B, b1.created_at),
    )
    assert a5.created_at == TODAY + timedelta(hours=11, minutes=30)
    assert b1.created_at == YESTERDAY_EVENING


async def test_the_report_reads_and_changes_nothing(world: World) -> None:
    await populate(world)

    async def counts() -> tuple[int, ...]:
        async with world.database.transaction() as session:
            jobs = (await session.exec(select(func.max(Job.updated_at), func.count()))).one()
            held = await session.exec(
                select(func.count()).where(Reservation.state == ReservationState.HELD)
            )
            return (*jobs, held.one())

    before = await counts()
    await world.clock.advance(86400 * 40)  # a new month: a report must not roll periods over
    report = await status_report(world.database, world.clock)

    assert await counts() == before
    assert report.spent_today == 0
    assert report.loss_today == 0
    assert report.spent_this_period == 110  # cached: the servers' rows were not touched


async def test_an_empty_database_reports_zeros(database: Database, clock: FakeClock) -> None:
    report = await status_report(database, clock)

    assert report.jobs_by_state == dict.fromkeys(JobState, 0)
    assert report.oldest_running is None
    assert (report.spent_today, report.spent_this_period, report.guilds) == (0, 0, 0)
    assert (report.loss_total, report.loss_today, report.top_guilds) == (0, 0, ())
    assert report.unknown_outcomes == ()
    text = format_status(report)
    assert "oldest running: none" in text
    assert "Unknown outcomes to reconcile: none" in text


async def test_to_json_round_trips_every_figure(world: World) -> None:
    ids = await populate(world)
    report = await status_report(world.database, world.clock)

    data = json.loads(json.dumps(report.to_json()))

    assert data["generated_at"] == "2026-01-05T12:00:00+00:00"
    assert data["jobs"]["by_state"] == {str(s): n for s, n in report.jobs_by_state.items()}
    assert data["jobs"]["active"] == 3
    assert data["jobs"]["oldest_running"] == {
        "job_id": ids["c1"],
        "guild_id": GUILD_C,
        "task_id": "task-c1",
        "submitted_at": "2026-01-05T10:30:00+00:00",
        "running_seconds": 5400.0,
    }
    assert data["credits"] == {
        "spent_today": 70,
        "settled_jobs_today": 2,
        "spent_this_period": 110,
        "guilds": 3,
        "top_guilds": [
            {"guild_id": GUILD_A, "spent": 70, "balance": 290, "limit": 400, "period": "none"},
            {"guild_id": GUILD_B, "spent": 40, "balance": 460, "limit": 500, "period": "monthly"},
        ],
    }
    assert data["loss"] == {"total": 65, "today": 25, "jobs": 2}
    assert [outcome["job_id"] for outcome in data["unknown_outcomes"]] == [ids["a5"], ids["b1"]]
    assert data["unknown_outcomes"][0]["created_at"] == "2026-01-05T11:30:00+00:00"
    assert (
        data["unknown_outcomes"][1]["idempotency_key"] == report.unknown_outcomes[1].idempotency_key
    )


async def test_the_text_mentions_every_figure(world: World) -> None:
    ids = await populate(world)
    report = await status_report(world.database, world.clock)

    text = format_status(report)

    assert "imagine-bot status at 2026-01-05 12:00:00 UTC" in text
    assert "Jobs: 12 in all, 3 active" in text
    assert "active: created 1, submitting 0, running 2, delivering 0" in text
    assert "ended:  delivered 3, rejected 1, failed 4, expired 1" in text
    assert (
        f"oldest running: job {ids['c1']} in server {GUILD_C}, task task-c1, "
        "submitted 2026-01-05 10:30:00 UTC (1h 30m ago)"
    ) in text
    assert "spent today (since 2026-01-05 00:00:00 UTC): 70 (2 jobs settled)" in text
    assert "spent this period: 110, across 3 servers" in text
    assert "lost (consumed by the API on refunded jobs): 65 in all (2 jobs), 25 today" in text
    assert f"server {GUILD_A}: spent 70, left 290 of 400 (none)" in text
    assert f"server {GUILD_B}: spent 40, left 460 of 500 (monthly)" in text
    assert f"server {GUILD_C}" not in text.split("Top servers")[1].split("Unknown")[0]
    assert "Unknown outcomes to reconcile: 2" in text
    for outcome in report.unknown_outcomes:
        assert (
            f"key {outcome.idempotency_key}  job {outcome.job_id}  server {outcome.guild_id}"
        ) in text
    assert text.index(ids["a5"]) < text.index(ids["b1"])  # newest first


def test_the_text_lists_twenty_unknown_outcomes_and_counts_the_rest() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    outcomes = tuple(
        UnknownOutcome(f"key{i:02d}", f"job{i:02d}", GUILD_A, now - timedelta(minutes=i))
        for i in range(23)
    )
    report = StatusReport(
        generated_at=now,
        jobs_by_state=dict.fromkeys(JobState, 0) | {JobState.FAILED: 23},
        oldest_running=None,
        spent_today=0,
        settled_today=0,
        spent_this_period=0,
        guilds=0,
        top_guilds=(),
        loss_total=0,
        loss_today=0,
        loss_jobs=0,
        unknown_outcomes=outcomes,
    )

    text = format_status(report)

    assert "Unknown outcomes to reconcile: 23" in text
    assert "key19" in text
    assert "key20" not in text
    assert "… and 3 more (imagine-bot status --json lists all)" in text
    assert len(report.to_json()["unknown_outcomes"]) == 23


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (725, "12m 05s"), (11220, "3h 07m"), (187200, "2d 04h")],
)
def test_durations_read_short(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


async def test_the_schema_must_be_at_head(database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        assert await schema_problem(database) == NO_SCHEMA
        await database.upgrade("0002")
        assert await schema_problem(database) == (
            f"the database schema is at revision 0002, older than {head_revision()}: "
            "run imagine-bot db upgrade"
        )
        await database.upgrade()
        assert await schema_problem(database) is None
    finally:
        await database.dispose()


# --- backup --------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def test_a_backup_taken_while_jobs_run_is_whole_and_consistent(tmp_path: Path) -> None:
    source = tmp_path / "live" / "bot.sqlite3"
    copy = tmp_path / "backups" / "nightly" / "bot.sqlite3"
    clock = FakeClock()
    database = Database.from_url(sqlite_url(source))
    jobs = JobStore(clock=clock)
    budgets = Budgets(default_guild_credits=10**9, clock=clock)
    committed = 0
    stop = asyncio.Event()
    progress = asyncio.Condition()
    deadline = time.monotonic() + 30

    async def writer(guild_id: int) -> None:
        """Reserve and record a job, then deliver and settle it or fail and refund it."""
        nonlocal committed
        for round_ in range(500):
            if stop.is_set() or time.monotonic() > deadline:
                return
            async with database.transaction() as session:
                job = await jobs.create(session, new_job(guild_id), next_poll_at=clock.now())
                await budgets.reserve(
                    session, guild_id=guild_id, member_id=MEMBER, cost=COST, job_id=job.id
                )
            async with database.transaction() as session:
                await jobs.transition(session, job.id, JobState.CREATED, JobState.SUBMITTING)
                if round_ % 3 == 0:
                    await jobs.transition(session, job.id, JobState.SUBMITTING, JobState.FAILED)
                    await budgets.refund(session, job.id)
                elif round_ % 3 == 1:
                    for before, after in (
                        (JobState.SUBMITTING, JobState.RUNNING),
                        (JobState.RUNNING, JobState.DELIVERING),
                        (JobState.DELIVERING, JobState.DELIVERED),
                    ):
                        await jobs.transition(session, job.id, before, after)
                    await budgets.settle(session, job.id, COST - round_ % 7)
                # else: left in flight, its credits held
            async with progress:
                committed += 1
                progress.notify_all()

    async def wait_for(count: int) -> None:
        async with progress:
            await asyncio.wait_for(progress.wait_for(lambda: committed >= count), timeout=30)

    try:
        await database.upgrade()
        writers = [asyncio.create_task(writer(guild)) for guild in (GUILD_A, GUILD_B, GUILD_C)]
        await wait_for(30)
        result = await asyncio.to_thread(backup_sqlite, sqlite_url(source), copy)
        after_backup = committed
        await wait_for(after_backup + 10)  # the writers carry on
        stop.set()
        await asyncio.gather(*writers)
        async with database.transaction() as session:
            live_jobs = (await session.exec(select(func.count()).select_from(Job))).one()
    finally:
        await database.dispose()

    assert result.integrity == "ok"
    assert result.ok
    assert result.path == copy
    assert result.size_bytes == copy.stat().st_size > 0
    with sqlite3.connect(copy) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert not copy.with_name(".bot.sqlite3.partial").exists()

    restored = Database.from_url(sqlite_url(copy))
    try:
        assert await restored.current_revision() == head_revision()
        async with restored.transaction() as session:
            assert await ledger_problems(session) == []
            copied_jobs = (await session.exec(select(func.count()).select_from(Job))).one()
            # Each job and its reservation were committed together: the copy has both or none,
            # and a job's state agrees with its money.
            pairs = (
                await session.exec(
                    select(Job.state, Reservation.state).join(
                        Reservation, Reservation.job_id == Job.id, isouter=True
                    )
                )
            ).all()
    finally:
        await restored.dispose()
    assert 30 <= copied_jobs < live_jobs
    expected = {
        JobState.FAILED: ReservationState.REFUNDED,
        JobState.DELIVERED: ReservationState.SETTLED,
        JobState.SUBMITTING: ReservationState.HELD,
        JobState.CREATED: ReservationState.HELD,
    }
    assert len(pairs) == copied_jobs
    assert all(expected[JobState(job)] == reservation for job, reservation in pairs), pairs


def test_a_backup_never_overwrites_unless_forced(tmp_path: Path) -> None:
    source, target = tmp_path / "bot.sqlite3", tmp_path / "backup.sqlite3"
    with sqlite3.connect(source) as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES (1)")
    connection.close()
    target.write_text("yesterday's backup")

    with pytest.raises(BackupRefused, match="already exists: pass --force"):
        backup_sqlite(sqlite_url(source), target)
    assert target.read_text() == "yesterday's backup"

    result = backup_sqlite(sqlite_url(source), target, overwrite=True)

    assert result.ok
    with sqlite3.connect(target) as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]
    connection.close()


def test_a_backup_needs_a_database_file(tmp_path: Path) -> None:
    with pytest.raises(BackupRefused, match="there is no database at"):
        backup_sqlite(sqlite_url(tmp_path / "missing.sqlite3"), tmp_path / "copy.sqlite3")
    source = tmp_path / "bot.sqlite3"
    sqlite3.connect(source).close()
    with pytest.raises(BackupRefused, match="is the database itself"):
        backup_sqlite(sqlite_url(source), source, overwrite=True)
    assert not (tmp_path / "missing.sqlite3").exists()
    assert not (tmp_path / "copy.sqlite3").exists()


def test_pg_dump_command_hides_the_password() -> None:
    command = pg_dump_command("postgresql+asyncpg://bot:s3cret@db.example:5433/imagine?ssl=require")

    assert command.startswith(
        'pg_dump "postgresql://bot@db.example:5433/imagine?sslmode=require" > backup.sql'
    )
    assert "s3cret" not in command
    assert pg_dump_command("postgresql+asyncpg://bot@db/imagine") == (
        'pg_dump "postgresql://bot@db/imagine" > backup.sql'
    )
