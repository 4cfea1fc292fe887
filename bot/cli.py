"""Command line: ``imagine-bot [run]``, ``status``, ``db upgrade|backup`` (or ``python -m bot``).

The process's entry point: it reads the settings and sets up logging, then runs an operator
command (the database only: ``bot.operations``) or hands over to the composition root,
``cogs.main``, which is imported only to run the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from bot.clock import SystemClock
from bot.config import ConfigError, Settings, database_url_from_env, load_settings
from bot.db import Database, SchemaTooNew, upgrade_database
from bot.logs import configure_logging, configure_plain_logging, database_password
from bot.operations import (
    NO_SCHEMA,
    BackupRefused,
    StatusReport,
    backup_sqlite,
    format_status,
    pg_dump_command,
    schema_problem,
    sqlite_path,
    status_report,
)

log = logging.getLogger("bot")


def display_database(url: str) -> str:
    """The database URL as an operator may see it: never with its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(unparsable DATABASE_URL)"


def bot_version() -> str:
    try:
        return version("imagine-bot")
    except PackageNotFoundError:
        return "unknown (not installed)"


def log_startup(settings: Settings) -> None:
    """What the operator needs to know at start-up, one line each."""
    log.info("imagine-bot %s starting", bot_version())
    log.info("database: %s", display_database(settings.database_url))
    if settings.dry_run:
        log.info("dry run: yes (GROK_API_TOKEN is not set; the built-in simulator answers)")
    else:
        log.info("dry run: no (GrokImagine API at %s)", settings.grok_api_base_url)
    log.info(
        "rate plan: %d requests/min to the GrokImagine API, shared by all servers",
        settings.grok_rate_limit_per_minute,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagine-bot",
        description="A Discord bot that turns /imagine into short videos.",
        epilog="status and db need only DATABASE_URL (from the environment or .env).",
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    commands.add_parser("run", help="start the bot (the default)")
    status = commands.add_parser(
        "status",
        help="jobs, credits spent and lost, submissions to reconcile (reads the database only)",
    )
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    database = commands.add_parser("db", help="database maintenance: upgrade, backup")
    actions = database.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("upgrade", help="apply pending migrations")
    backup = actions.add_parser(
        "backup", help="copy a SQLite database to PATH, also while the bot runs"
    )
    backup.add_argument("path", metavar="PATH", type=Path, help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    return parser


def _fail(message: str) -> None:
    print(f"imagine-bot: {message}", file=sys.stderr)


def _one_line(error: BaseException, database_url: str) -> str:
    """An exception as one line, without SQLAlchemy's SQL echo and never with the password."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    password = database_password(database_url)
    return text.replace(password, "***") if password else text


def _upgrade(database_url: str) -> int:
    configure_plain_logging(logging.INFO, [database_password(database_url)])
    log.info("upgrading database: %s", display_database(database_url))
    try:
        asyncio.run(upgrade_database(database_url))
    except SchemaTooNew as error:
        _fail(str(error))
        return 1
    except (OSError, SQLAlchemyError) as error:
        _fail(f"could not open the database: {_one_line(error, database_url)}")
        return 1
    print("imagine-bot: the database is up to date")
    return 0


async def _read_status(database_url: str) -> StatusReport | str:
    """The report, or the one line saying why there is none."""
    if make_url(database_url).get_backend_name() == "sqlite":
        path = sqlite_path(database_url)
        if path is not None and not path.is_file():
            # Opening it would create an empty file: status never changes anything.
            return f"{NO_SCHEMA} (there is no file at {path})"
    database = Database.from_url(database_url)
    try:
        problem = await schema_problem(database)
        if problem is not None:
            return problem
        return await status_report(database, SystemClock())
    finally:
        await database.dispose()


def _status(database_url: str, as_json: bool) -> int:
    configure_plain_logging(logging.WARNING, [database_password(database_url)])
    try:
        report = asyncio.run(_read_status(database_url))
    except (OSError, SQLAlchemyError) as error:
        _fail(f"could not open the database: {_one_line(error, database_url)}")
        return 1
    if isinstance(report, str):
        _fail(report)
        return 1
    print(json.dumps(report.to_json(), indent=2) if as_json else format_status(report))
    return 0


def _backup(database_url: str, path: Path, force: bool) -> int:
    if make_url(database_url).get_backend_name() != "sqlite":
        _fail(f"db backup copies SQLite only; for PostgreSQL use {pg_dump_command(database_url)}")
        return 2
    try:
        result = backup_sqlite(database_url, path, overwrite=force)
    except BackupRefused as error:
        _fail(str(error))
        return 1
    except (OSError, sqlite3.Error) as error:
        _fail(f"could not back up the database: {_one_line(error, database_url)}")
        return 1
    print(f"imagine-bot: copied {result.source} to {result.path} ({result.size_bytes:,} bytes)")
    if not result.ok:
        _fail(f"integrity check of the copy FAILED: {result.integrity.replace(chr(10), '; ')}")
        return 1
    print("imagine-bot: integrity check of the copy: ok")
    return 0


def _database_command(args: argparse.Namespace, database_url: str) -> int:
    if args.action == "backup":
        return _backup(database_url, args.path, args.force)
    return _upgrade(database_url)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command in {"db", "status"}:
            database_url = database_url_from_env()
        else:
            settings = load_settings()
    except ConfigError as error:
        print(f"imagine-bot: {error}", file=sys.stderr)
        return 2
    if args.command == "status":
        return _status(database_url, args.json)
    if args.command == "db":
        return _database_command(args, database_url)
    configure_logging(settings)
    log_startup(settings)

    # The only import of the Discord side from here, and only to run the bot.
    from cogs.main import run

    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0
    except (OSError, SchemaTooNew) as error:
        # The database or the API could not be reached at start-up, or is not ours to use.
        log.error("imagine-bot could not start: %s", error)
        return 1
