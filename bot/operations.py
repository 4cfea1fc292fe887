"""Operator use cases that need only the database: ``imagine-bot status`` and ``db backup``.

Nothing here writes to the bot's database. ``status_report`` reads every figure in one
transaction (a snapshot: REPEATABLE READ on PostgreSQL; on SQLite the transaction holds the
database lock for the few milliseconds the queries take), and ``backup_sqlite`` copies a live
SQLite file with SQLite's own online backup, which the bot may keep writing through.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import URL, case, func, make_url
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.budget import ReservationState
from bot.clock import Clock
from bot.db import MIGRATIONS_DIR, SQLITE_BUSY_TIMEOUT_SECONDS, Database
from bot.jobs import ACTIVE_STATES, JobState, JobStore
from bot.models import GuildBudget, Job, Reservation
from bot.service import FailureReason

TOP_GUILDS = 5
UNKNOWN_OUTCOMES_SHOWN = 20
# Jobs that ended with a refund although the API may have charged for them; a rejected job
# never ran, so it never cost anything.
REFUNDED_STATES = (JobState.FAILED, JobState.EXPIRED)
NO_SCHEMA = "the database has no schema yet: run imagine-bot db upgrade"


# --- the schema ----------------------------------------------------------------------------


def head_revision() -> str | None:
    """The newest migration this version of the bot ships."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory one); ValueError for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"not a SQLite database: {url.get_backend_name()}")
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


async def schema_problem(database: Database) -> str | None:
    """Why the database can't be read as this version's schema; None when it is at head."""
    current = await database.current_revision()
    head = head_revision()
    if current is None:
        return NO_SCHEMA
    if current == head:
        return None
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if current in known:
        return (
            f"the database schema is at revision {current}, older than {head}: "
            "run imagine-bot db upgrade"
        )
    return (
        f"the database schema is at revision {current}, which this version of imagine-bot "
        f"does not know (its newest is {head}): is a newer version running?"
    )


# --- status --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningJob:
    """The job that has been waiting longest for the API."""

    job_id: str
    guild_id: int
    task_id: str | None
    submitted_at: datetime
    running_for: timedelta


@dataclass(frozen=True, slots=True)
class GuildSpend:
    """A server's spend in its current period and what it has left."""

    guild_id: int
    spent: int
    balance: int  # negative when an admin lowered the budget below what was already used
    limit: int
    period: str


@dataclass(frozen=True, slots=True)
class UnknownOutcome:
    """A submission whose answer was lost: the API may have made (and billed) a video."""

    idempotency_key: str
    job_id: str
    guild_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What ``imagine-bot status`` shows; every figure read in one snapshot of the database."""

    generated_at: datetime
    jobs_by_state: dict[JobState, int]
    oldest_running: RunningJob | None
    spent_today: int  # credits settled since 00:00 UTC
    settled_today: int  # jobs settled (paid for) since 00:00 UTC
    spent_this_period: int  # sum of every server's spend in its current period
    guilds: int  # servers with a budget
    top_guilds: tuple[GuildSpend, ...]
    loss_total: int  # credits the API consumed on jobs that were refunded, all time
    loss_today: int  # the same for jobs that ended since 00:00 UTC
    loss_jobs: int  # how many refunded jobs consumed credits, all time
    unknown_outcomes: tuple[UnknownOutcome, ...]  # newest first

    @property
    def active_jobs(self) -> int:
        return sum(self.jobs_by_state[state] for state in ACTIVE_STATES)

    @property
    def today_start(self) -> datetime:
        return _midnight(self.generated_at)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only; times as ISO 8601 (UTC), durations in seconds."""
        running = self.oldest_running
        return {
            "generated_at": self.generated_at.isoformat(),
            "today_start": self.today_start.isoformat(),
            "jobs": {
                "by_state": {str(state): count for state, count in self.jobs_by_state.items()},
                "active": self.active_jobs,
                "oldest_running": None
                if running is None
                else {
                    "job_id": running.job_id,
                    "guild_id": running.guild_id,
                    "task_id": running.task_id,
                    "submitted_at": running.submitted_at.isoformat(),
                    "running_seconds": running.running_for.total_seconds(),
                },
            },
            "credits": {
                "spent_today": self.spent_today,
                "settled_jobs_today": self.settled_today,
                "spent_this_period": self.spent_this_period,
                "guilds": self.guilds,
                "top_guilds": [
                    {
                        "guild_id": guild.guild_id,
                        "spent": guild.spent,
                        "balance": guild.balance,
                        "limit": guild.limit,
                        "period": guild.period,
                    }
                    for guild in self.top_guilds
                ],
            },
            "loss": {
                "total": self.loss_total,
                "today": self.loss_today,
                "jobs": self.loss_jobs,
            },
            "unknown_outcomes": [
                {
                    "idempotency_key": outcome.idempotency_key,
                    "job_id": outcome.job_id,
                    "guild_id": outcome.guild_id,
                    "created_at": outcome.created_at.isoformat(),
                }
                for outcome in self.unknown_outcomes
            ],
        }


async def status_report(database: Database, clock: Clock) -> StatusReport:
    """Jobs, spend, loss and submissions to reconcile; reads only, one statement per figure."""
    now = clock.now()
    midnight = _midnight(now)
    async with _snapshot(database) as session:
        by_state = await JobStore(clock=clock).count_by_state(session)
        oldest = await _oldest_running(session, now)

        spent_today, settled_today = (
            await session.exec(
                select(func.coalesce(func.sum(Reservation.consumed), 0), func.count()).where(
                    col(Reservation.state) == ReservationState.SETTLED,
                    col(Reservation.released_at) >= midnight,
                )
            )
        ).one()

        spent_this_period, guilds = (
            await session.exec(select(func.coalesce(func.sum(GuildBudget.spent), 0), func.count()))
        ).one()

        top = await session.exec(
            select(
                GuildBudget.guild_id,
                GuildBudget.spent,
                GuildBudget.balance,
                GuildBudget.limit_credits,
                GuildBudget.period,
            )
            .where(col(GuildBudget.spent) > 0)
            .order_by(col(GuildBudget.spent).desc(), col(GuildBudget.guild_id))
            .limit(TOP_GUILDS)
        )

        lost = col(Job.consumed_credits)
        # updated_at is when a refunded job ended: nothing changes a job after that.
        loss_total, loss_today, loss_jobs = (
            await session.exec(
                select(
                    func.coalesce(func.sum(lost), 0),
                    func.coalesce(
                        func.sum(case((col(Job.updated_at) >= midnight, lost), else_=0)), 0
                    ),
                    func.count(),
                ).where(col(Job.state).in_(REFUNDED_STATES), lost > 0)
            )
        ).one()

        unknown = await session.exec(
            select(Job.idempotency_key, Job.id, Job.guild_id, Job.created_at)
            .where(col(Job.error_code) == FailureReason.OUTCOME_UNKNOWN)
            .order_by(col(Job.created_at).desc(), col(Job.id).desc())
        )

        return StatusReport(
            generated_at=now,
            jobs_by_state=by_state,
            oldest_running=oldest,
            spent_today=int(spent_today),
            settled_today=int(settled_today),
            spent_this_period=int(spent_this_period),
            guilds=int(guilds),
            top_guilds=tuple(
                GuildSpend(guild_id=g, spent=s, balance=b, limit=limit, period=p)
                for g, s, b, limit, p in top.all()
            ),
            loss_total=int(loss_total),
            loss_today=int(loss_today),
            loss_jobs=int(loss_jobs),
            unknown_outcomes=tuple(
                UnknownOutcome(idempotency_key=key, job_id=job_id, guild_id=guild, created_at=at)
                for key, job_id, guild, at in unknown.all()
            ),
        )


async def _oldest_running(session: AsyncSession, now: datetime) -> RunningJob | None:
    since = func.coalesce(col(Job.submitted_at), col(Job.created_at))
    row = (
        await session.exec(
            select(Job.id, Job.guild_id, Job.task_id, Job.submitted_at, Job.created_at)
            .where(col(Job.state) == JobState.RUNNING)
            .order_by(since, col(Job.id))
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    job_id, guild_id, task_id, submitted_at, created_at = row
    started = submitted_at or created_at
    return RunningJob(
        job_id=job_id,
        guild_id=guild_id,
        task_id=task_id,
        submitted_at=started,
        running_for=max(timedelta(0), now - started),
    )


@asynccontextmanager
async def _snapshot(database: Database) -> AsyncIterator[AsyncSession]:
    """A read transaction in which every statement sees the same data."""
    if database.dialect_name != "postgresql":
        # SQLite: Database.transaction() begins IMMEDIATE, so no writer commits in between.
        async with database.transaction() as session:
            yield session
        return
    async with database.engine.connect() as connection:
        await connection.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with AsyncSession(bind=connection) as session, session.begin():
            yield session


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def format_duration(duration: timedelta) -> str:
    """A short human duration: "45s", "12m 05s", "3h 07m", "2d 04h"."""
    seconds = max(0, int(duration.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_status(report: StatusReport) -> str:
    """The report as the operator reads it in a terminal."""
    states = report.jobs_by_state
    active = [state for state in JobState if state in ACTIVE_STATES]
    ended = [state for state in JobState if state not in ACTIVE_STATES]
    lines = [
        f"imagine-bot status at {_time(report.generated_at)}",
        "",
        f"Jobs: {sum(states.values())} in all, {report.active_jobs} active",
        "  active: " + ", ".join(f"{state} {states[state]}" for state in active),
        "  ended:  " + ", ".join(f"{state} {states[state]}" for state in ended),
    ]
    running = report.oldest_running
    if running is None:
        lines.append("  oldest running: none")
    else:
        lines.append(
            f"  oldest running: job {running.job_id} in server {running.guild_id}, "
            f"task {running.task_id or '-'}, submitted {_time(running.submitted_at)} "
            f"({format_duration(running.running_for)} ago)"
        )
    lines += [
        "",
        "Credits",
        (
            f"  spent today (since {_time(report.today_start)}): {report.spent_today} "
            f"({report.settled_today} jobs settled)"
        ),
        (
            f"  spent this period: {report.spent_this_period}, across {report.guilds} servers "
            "(each server's current period)"
        ),
        (
            f"  lost (consumed by the API on refunded jobs): {report.loss_total} in all "
            f"({report.loss_jobs} jobs), {report.loss_today} today"
        ),
        "",
    ]
    if report.top_guilds:
        lines.append(f"Top servers by spend this period (at most {TOP_GUILDS})")
        lines.extend(
            f"  server {guild.guild_id}: spent {guild.spent}, left {guild.balance} "
            f"of {guild.limit} ({guild.period})"
            for guild in report.top_guilds
        )
    else:
        lines.append("Top servers by spend this period: none has spent anything")
    lines.append("")
    outcomes = report.unknown_outcomes
    if not outcomes:
        lines.append("Unknown outcomes to reconcile: none")
    else:
        lines.append(
            f"Unknown outcomes to reconcile: {len(outcomes)} (look each idempotency key up "
            "in the API account; newest first)"
        )
        lines.extend(
            f"  key {outcome.idempotency_key}  job {outcome.job_id}  "
            f"server {outcome.guild_id}  created {_time(outcome.created_at)}"
            for outcome in outcomes[:UNKNOWN_OUTCOMES_SHOWN]
        )
        if len(outcomes) > UNKNOWN_OUTCOMES_SHOWN:
            lines.append(
                f"  … and {len(outcomes) - UNKNOWN_OUTCOMES_SHOWN} more (imagine-bot status --json"
                " lists all)"
            )
    return "\n".join(lines)


# --- backup --------------------------------------------------------------------------------


class BackupRefused(Exception):
    """The backup was not taken; ``str()`` is the one line for the operator."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    source: Path
    path: Path
    size_bytes: int
    integrity: str  # PRAGMA integrity_check on the copy: "ok", or its findings one per line

    @property
    def ok(self) -> bool:
        return self.integrity == "ok"


def backup_sqlite(database_url: str, path: Path | str, *, overwrite: bool = False) -> BackupResult:
    """Copy the SQLite database at ``database_url`` to ``path`` while the bot may be writing.

    SQLite's online backup copies every page in one read transaction, so the copy is the
    database as of one commit; in WAL mode the bot's writers carry on meanwhile. The copy is a
    single self-contained file (rollback journal, not WAL), checked with ``integrity_check``
    before it takes its final name. Blocking: call it in a thread from async code.
    """
    source = sqlite_path(database_url)
    if source is None:
        raise BackupRefused("DATABASE_URL is an in-memory SQLite database: nothing to back up")
    if not source.is_file():
        raise BackupRefused(f"there is no database at {source}")
    target = Path(path)
    if target.exists() and target.resolve() == source.resolve():
        raise BackupRefused(f"{target} is the database itself")
    if target.exists() and not overwrite:
        raise BackupRefused(f"{target} already exists: pass --force to overwrite it")
    if target.is_dir():
        raise BackupRefused(f"{target} is a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        with (
            closing(sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)) as origin,
            closing(sqlite3.connect(partial)) as copy,
        ):
            origin.backup(copy)  # all pages in one step: one consistent snapshot
            copy.execute("PRAGMA journal_mode=DELETE")
            integrity = "\n".join(str(row[0]) for row in copy.execute("PRAGMA integrity_check"))
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupResult(
        source=source, path=target, size_bytes=target.stat().st_size, integrity=integrity
    )


def pg_dump_command(database_url: str) -> str:
    """How to back up a PostgreSQL database instead: libpq's URL form, without the password."""
    url = make_url(database_url)
    # asyncpg's ?ssl=require is libpq's ?sslmode=require (the values are the same).
    query = {("sslmode" if key == "ssl" else key): value for key, value in url.query.items()}
    bare = URL.create(
        "postgresql",
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=query,
    )
    command = f'pg_dump "{bare.render_as_string(hide_password=False)}" > backup.sql'
    if url.password:
        command += " (password from PGPASSWORD or ~/.pgpass)"
    return command
