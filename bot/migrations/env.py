"""Alembic environment: runs on the connection ``bot.db.Database`` passes in.

There is no alembic.ini; ``bot.db`` builds the configuration and hands over a synchronous
connection (from ``AsyncConnection.run_sync``) in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bot.db import UTCDateTime

target_metadata = SQLModel.metadata


def render_item(type_: str, item: Any, autogen_context: AutogenContext) -> str | bool:
    # Migrations stay independent of application code: UTCDateTime's DDL is a timestamptz.
    if type_ == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations through bot.db.Database.upgrade(), which passes a connection"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations()
