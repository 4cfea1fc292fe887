"""Command line: ``imagine-bot [run]``, ``imagine-bot db upgrade`` (also ``python -m bot``).

The process's entry point: it reads the settings and sets up logging, then runs an operator
command (the database only) or hands over to the composition root, ``cogs.main``, which is
imported only to run the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from bot.config import ConfigError, Settings, database_url_from_env, load_settings

log = logging.getLogger("bot")


class SecretFilter(logging.Filter):
    """Masks secret values wherever they would appear in a log line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if len(secret) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self._secrets:
            masked = masked.replace(secret, "********")
        if masked != message:
            record.msg, record.args = masked, None
        return True


LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def _database_password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):  # unparsable: nothing recognisable to mask
        return None


def display_database(url: str) -> str:
    """The database URL as an operator may see it: never with its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(unparsable DATABASE_URL)"


def _configure_root(level: str | int, secrets: Iterable[str | None]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    handler.addFilter(SecretFilter(secret for secret in secrets if secret))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # discord.py's gateway chatter is noise at INFO.
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))
    # Alembic announces its plugins and its SQLite assumptions at INFO on every start.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger, at ``LOG_LEVEL``, masking every secret."""
    secrets = [settings.discord_token.get_secret_value(), _database_password(settings.database_url)]
    if settings.grok_api_token is not None:
        secrets.append(settings.grok_api_token.get_secret_value())
    _configure_root(settings.log_level, secrets)


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
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="start the bot (the default)")
    database = commands.add_parser("db", help="database maintenance")
    database.add_argument("action", choices=["upgrade"], help="apply pending migrations")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "db":
            database_url = database_url_from_env()
        else:
            settings = load_settings()
    except ConfigError as error:
        print(f"imagine-bot: {error}", file=sys.stderr)
        return 2
    if args.command == "db":
        _configure_root(logging.INFO, [_database_password(database_url)])
        from bot.db import upgrade_database

        log.info("upgrading database: %s", display_database(database_url))
        asyncio.run(upgrade_database(database_url))
        print("imagine-bot: the database is up to date")
        return 0
    configure_logging(settings)
    log_startup(settings)

    # The only import of the Discord side from here, and only to run the bot.
    from cogs.main import run

    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0
    except OSError as error:
        # The database or the API could not be reached at start-up.
        log.error("imagine-bot could not start: %s", error)
        return 1
