"""Engine set-up, sessions and the UTC datetime type, on real databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.exc import StatementError

from bot.db import Database, SchemaTooNew, UTCDateTime

metadata = MetaData()
stamps = Table(
    "test_stamps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime(), nullable=True),
)
counters = Table(
    "test_counters", metadata, Column("id", Integer, primary_key=True), Column("n", Integer)
)


@pytest.fixture
async def scratch(database: Database) -> Database:
    """The migrated database plus two throwaway tables."""
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return database


async def test_sqlite_creates_the_directory_and_configures_each_connection(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "bot.sqlite3"
    database = Database.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        assert database.dialect_name == "sqlite"
        async with database.engine.connect() as connection:
            pragmas = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}
        assert path.exists()
    finally:
        await database.dispose()


def test_unknown_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        Database.from_url("mysql+aiomysql://localhost/bot")


async def test_postgresql_runs_read_committed(database: Database) -> None:
    if database.dialect_name != "postgresql":
        pytest.skip("PostgreSQL only")
    async with database.transaction() as session:
        level = (await session.exec(text("SHOW transaction_isolation"))).scalar()
    assert level == "read committed"


async def test_datetimes_are_stored_and_returned_as_utc(scratch: Database) -> None:
    plus_two = datetime(2026, 6, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    async with scratch.transaction() as session:
        await session.exec(insert(stamps).values(id=1, at=plus_two))
        await session.exec(insert(stamps).values(id=2, at=None))

    async with scratch.transaction() as session:
        rows = (await session.exec(select(stamps.c.id, stamps.c.at).order_by(stamps.c.id))).all()

    assert [tuple(row) for row in rows] == [
        (1, datetime(2026, 6, 1, 12, 30, tzinfo=UTC)),
        (2, None),
    ]
    assert rows[0].at.tzinfo is UTC


async def test_naive_datetimes_are_refused(scratch: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with scratch.transaction() as session:
            await session.exec(insert(stamps).values(id=1, at=datetime(2026, 6, 1)))  # noqa: DTZ001


async def test_a_transaction_commits_on_success_and_rolls_back_on_error(scratch: Database) -> None:
    async with scratch.transaction() as session:
        await session.exec(insert(counters).values(id=1, n=1))

    async def fail_midway() -> None:
        async with scratch.transaction() as session:
            await session.exec(insert(counters).values(id=2, n=2))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_midway()

    async with scratch.transaction() as session:
        assert (await session.exec(select(counters.c.id))).scalars().all() == [1]


async def test_sqlite_serializes_read_then_write_transactions(scratch: Database) -> None:
    # BEGIN IMMEDIATE takes the write lock up front, so a read followed by a write can neither
    # deadlock ("database is locked") nor lose another writer's update.
    if scratch.dialect_name != "sqlite":
        pytest.skip("PostgreSQL code paths use conditional UPDATEs instead")
    async with scratch.transaction() as session:
        await session.exec(insert(counters).values(id=1, n=0))

    async def increment() -> None:
        async with scratch.transaction() as session:
            current = (await session.exec(select(counters.c.n))).scalar_one()
            await asyncio.sleep(0)
            await session.exec(counters.update().values(n=current + 1))

    await asyncio.gather(*(increment() for _ in range(30)))

    async with scratch.transaction() as session:
        assert (await session.exec(select(counters.c.n))).scalar_one() == 30


async def test_sessions_keep_loaded_values_after_commit(scratch: Database) -> None:
    async with scratch.transaction() as session:
        await session.exec(insert(counters).values(id=7, n=70))
    session = scratch.session()
    async with session:
        async with session.begin():
            row = (await session.exec(select(counters))).one()
        assert (row.id, row.n) == (7, 70)


async def test_processes_starting_together_migrate_once(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        # Several processes on one SQLite file are refused at start (one line saying why), and
        # four engines racing through every migration there only test SQLite's busy timeout.
        pytest.skip("several processes run on PostgreSQL only")
    # Each Database is its own engine, as in its own process; on PostgreSQL an advisory lock
    # makes the others wait for the first migration instead of racing it.
    databases = [Database.from_url(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(database.upgrade() for database in databases))
        revisions = {await database.current_revision() for database in databases}
    finally:
        for database in databases:
            await database.dispose()
    assert len(revisions) == 1
    assert None not in revisions


async def test_a_schema_from_a_newer_version_is_refused(database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        await database.upgrade()
        async with database.engine.begin() as connection:
            await connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(SchemaTooNew, match="revision 9999, newer than this version"):
            await database.upgrade()
    finally:
        await database.dispose()
