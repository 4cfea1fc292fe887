"""Shared fixtures: a fake clock and real databases (SQLite always, PostgreSQL when configured).

PostgreSQL runs need ``TEST_DATABASE_URL=postgresql+asyncpg://user@host:port/db``; each test
gets its own freshly created database there, dropped afterwards.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db import Database
from tests.support.clock import FakeClock
from tests.support.ledger import ledger_problems


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.sqlite3'}"
        return
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    name = f"imagine_test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database; after the test its books must still balance."""
    db = Database.from_url(database_url)
    try:
        await db.upgrade()
        yield db
        async with db.transaction() as session:
            problems = await ledger_problems(session)
        assert problems == [], problems
    finally:
        await db.dispose()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Setting logging up takes over the root logger: give it back as it was."""
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in ("alembic", "discord")]
    handlers, level = root.handlers[:], root.level
    levels = [logger.level for logger in loggers]
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger, saved in zip(loggers, levels, strict=True):
        logger.setLevel(saved)
