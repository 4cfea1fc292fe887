"""Command line: ``imagine-bot`` / ``python -m bot``."""

from __future__ import annotations

import sys

from bot.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        load_settings()
    except ConfigError as error:
        print(f"imagine-bot: {error}", file=sys.stderr)
        return 2
    return 0
