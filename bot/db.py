"""Engine, sessions and schema migrations for SQLite (one process) and PostgreSQL (many).

SQLite: every transaction starts with ``BEGIN IMMEDIATE``, so concurrent writers queue on the
database lock (bounded by the busy timeout) instead of upgrading a read lock and deadlocking.
PostgreSQL: READ COMMITTED; correctness comes from conditional UPDATEs and row locks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, DateTime, Dialect, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlmodel.ext.asyncio.session import AsyncSession

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key held while migrating (any fixed 64-bit number of our own).
MIGRATION_LOCK = 7_262_023_411


class SchemaTooNew(Exception):
    """The database was migrated by a newer version of the bot than this one."""

    def __init__(self, current: str, head: str) -> None:
        super().__init__(
            f"the database schema is at revision {current}, newer than this version of "
            f"imagine-bot knows (up to {head}): run the newer version, or upgrade this one"
        )


SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC (timestamptz on PostgreSQL, naive UTC on SQLite); always returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(DateTime(timezone=dialect.name == "postgresql"))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Database:
    """One engine and its session factory; pass it to whatever needs the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Database:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(
                url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
            )
            _configure_sqlite(engine)
            return cls(engine)
        if parsed.get_backend_name() == "postgresql":
            return cls(
                create_async_engine(
                    url, echo=echo, pool_pre_ping=True, isolation_level="READ COMMITTED"
                )
            )
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )

    @property
    def dialect_name(self) -> str:
        return self.engine.dialect.name

    def session(self) -> AsyncSession:
        return self._sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` in one transaction.

        Processes starting together migrate once: on PostgreSQL the transaction first takes an
        advisory lock, so the others wait and then find nothing left to do. A database that a
        newer version of the bot has already migrated further is refused (``SchemaTooNew``)
        rather than run against unnoticed.
        """
        async with self.engine.begin() as connection:
            if self.dialect_name == "postgresql":
                await connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            await connection.run_sync(_check_not_newer)
            await connection.run_sync(_run_alembic, command.upgrade, revision)

    async def downgrade(self, revision: str) -> None:
        """Revert migrations down to ``revision`` (``"base"`` empties the schema)."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_run_alembic, command.downgrade, revision)

    async def current_revision(self) -> str | None:
        """The applied migration revision, or None for an empty database."""
        from alembic.runtime.migration import MigrationContext

        def read(connection: Connection) -> str | None:
            return MigrationContext.configure(connection).get_current_revision()

        async with self.engine.connect() as connection:
            return await connection.run_sync(read)

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


async def upgrade_database(url: str, revision: str = "head") -> None:
    """What ``imagine-bot db upgrade`` does: migrate the database at ``url`` and let go."""
    database = Database.from_url(url)
    try:
        await database.upgrade(revision)
    finally:
        await database.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite opens transactions lazily and only before DML, which turns concurrent
    # read-then-write transactions into "database is locked" errors; take over BEGIN ourselves.
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _check_not_newer(connection: Connection) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(connection).get_current_revision()
    scripts = ScriptDirectory.from_config(_alembic_config(connection))
    known = {script.revision for script in scripts.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaTooNew(current, scripts.get_current_head() or "?")


def _run_alembic(connection: Connection, operation: Any, revision: str) -> None:
    operation(_alembic_config(connection), revision)


def dialect_of(session: AsyncSession) -> Any:
    """The dialect module whose ``insert`` has ON CONFLICT clauses for this database."""
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


async def insert_ignore(
    session: AsyncSession, model: type[Any], key: dict[str, Any], values: dict[str, Any]
) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on ``key`` (the primary key); True when it inserted."""
    statement = (
        dialect_of(session)
        .insert(model)
        .values(**key, **values)
        .on_conflict_do_nothing(index_elements=list(key))
    )
    return (await session.exec(statement)).rowcount == 1
