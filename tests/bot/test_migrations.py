"""Migrations on real databases: from empty, from 0001 with data, and in step with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (the tables the migrations must match)
from bot.budget import Budgets
from bot.budget_service import BudgetService
from bot.db import Database
from bot.jobs import JobStore
from tests.support.clock import FakeClock
from tests.support.ledger import ledger_problems

BUDGET_TABLES = {"guild_budget", "ledger", "reservation", "member_usage"}
ALERT_TABLES = {"budget_alert_settings", "budget_alert_claim"}
HEAD = "0005"


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def tables(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return await connection.run_sync(table_names)


async def test_upgrade_from_an_empty_database(database_url: str) -> None:
    database = Database.from_url(database_url)
    try:
        assert await database.current_revision() is None
        assert await tables(database) == set()

        await database.upgrade()
        await database.upgrade()  # nothing left to do

        assert await database.current_revision() == HEAD
        assert await tables(database) == BUDGET_TABLES | ALERT_TABLES | {"job", "rate_budget"}
    finally:
        await database.dispose()


async def test_upgrade_from_0001_keeps_budget_rows(database_url: str, clock: FakeClock) -> None:
    database = Database.from_url(database_url)
    budgets = Budgets(default_guild_credits=400, clock=clock)
    try:
        await database.upgrade("0001")
        assert await tables(database) == BUDGET_TABLES
        async with database.transaction() as session:
            await budgets.reserve(session, guild_id=2**62, member_id=2**61, cost=40, job_id="j1")

        await database.upgrade()

        assert await database.current_revision() == HEAD
        async with database.transaction() as session:
            view = await budgets.view(session, 2**62, member_id=2**61)
            assert (view.remaining, view.reserved, view.member_used) == (360, 40, 40)
            assert await budgets.settle(session, "j1", consumed=40) == 0
            assert await ledger_problems(session) == []
    finally:
        await database.dispose()


async def test_downgrade_to_base_and_back(database: Database) -> None:
    await database.downgrade("0001")
    assert await tables(database) == BUDGET_TABLES
    await database.downgrade("base")
    assert await tables(database) == set()
    assert await database.current_revision() is None
    await database.upgrade()
    assert await database.current_revision() == HEAD


async def test_models_match_the_migrations(database: Database) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)

    async with database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_0005_adds_the_alert_tables_and_takes_them_away(
    database_url: str, clock: FakeClock
) -> None:
    database = Database.from_url(database_url)
    budgets = Budgets(default_guild_credits=400, clock=clock)
    service = BudgetService(
        database=database, budgets=budgets, jobs=JobStore(clock=clock), clock=clock
    )
    try:
        await database.upgrade("0004")
        async with database.transaction() as session:
            await budgets.reserve(session, guild_id=2**62, member_id=2**61, cost=400, job_id="j1")

        await database.upgrade()
        await service.configure_alerts(2**62, channel_id=2**60, actor_id=2**61)
        assert [alert.threshold_percent for alert in await service.alerts_due(2**62)] == [100]

        await database.downgrade("0004")
        assert await database.current_revision() == "0004"
        assert ALERT_TABLES.isdisjoint(await tables(database))
        async with database.transaction() as session:
            assert (await budgets.view(session, 2**62)).reserved == 400
            assert await ledger_problems(session) == []

        await database.upgrade()
        assert await service.alert_settings(2**62) is None
    finally:
        await database.dispose()
