"""Command line: ``imagine-bot [run]``, ``imagine-bot db upgrade`` (also ``python -m bot``).

This is the process's composition root: it reads the settings, sets up logging, and hands the
domain's services to the Discord adapter in ``cogs`` (imported only here, only when running).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable

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


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    secrets = [settings.discord_token.reveal()]
    if settings.grok_api_token is not None:
        secrets.append(settings.grok_api_token.reveal())
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # discord.py's gateway chatter is noise at INFO.
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))


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
        logging.basicConfig(level=logging.INFO)
        from bot.db import upgrade_database

        asyncio.run(upgrade_database(database_url))
        print("imagine-bot: the database is up to date")
        return 0
    configure_logging(settings)

    from cogs.runner import run_bot

    try:
        return asyncio.run(run_bot(settings))
    except KeyboardInterrupt:
        return 0
    except OSError as error:
        # The database or the API could not be reached at start-up.
        log.error("imagine-bot could not start: %s", error)
        return 1
