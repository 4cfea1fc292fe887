"""Settings: read once at start-up from the environment and ``.env``, validated, immutable.

Nothing here runs at import time; ``load_settings()`` is called by the entry point and the
resulting ``Settings`` is passed to whatever needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/imagine-bot.sqlite3"
DEFAULT_API_BASE_URL = "https://grokimagineapi.com"

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or malformed. ``str()`` is the one line shown to the operator."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable} {problem} (see .env.example)")


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class BudgetAdmins(StrEnum):
    """Who may raise a server's budget: its own admins, or only the bot's owners."""

    GUILD = "guild"
    OWNERS = "owners"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every operator setting. The README's configuration table lists the same names."""

    discord_token: Secret
    grok_api_token: Secret | None = None
    grok_api_base_url: str = DEFAULT_API_BASE_URL
    database_url: str = DEFAULT_DATABASE_URL
    grok_rate_limit_per_minute: int = 100
    credits_per_video: int = 40
    default_guild_credits: int = 0
    poll_expected_seconds: float = 120.0
    job_timeout_minutes: int = 30
    max_prompt_length: int = 2000
    max_image_bytes: int = 10 * 1024 * 1024
    dev_guild_id: int | None = None
    owner_ids: frozenset[int] = field(default_factory=frozenset)
    budget_admins: BudgetAdmins = BudgetAdmins.GUILD
    log_level: str = "INFO"

    @property
    def dry_run(self) -> bool:
        """No API token: the bot talks to its built-in simulator and makes no real videos."""
        return self.grok_api_token is None


def _parse_int(minimum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def _parse_snowflake(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a Discord id")
    return value


def _parse_id_list(raw: str) -> frozenset[int]:
    return frozenset(_parse_snowflake(part) for part in raw.replace(" ", "").split(",") if part)


def _parse_base_url(raw: str) -> str:
    if not raw.startswith(("https://", "http://")):
        raise ValueError("must start with https:// or http://")
    return raw.rstrip("/")


def _parse_database_url(raw: str) -> str:
    if not raw.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
    return raw


def _parse_log_level(raw: str) -> str:
    level = raw.upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _parse_budget_admins(raw: str) -> BudgetAdmins:
    try:
        return BudgetAdmins(raw.lower())
    except ValueError:
        raise ValueError("must be 'guild' or 'owners'") from None


class _Reader:
    def __init__(self, values: Mapping[str, str | None]) -> None:
        self._values = values

    def raw(self, name: str) -> str | None:
        value = self._values.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as error:
            reason = str(error) if "must" in str(error) else "is malformed"
            raise ConfigError(name, f"{reason}: {raw!r}") from None


def settings_from_mapping(values: Mapping[str, str | None]) -> Settings:
    """Validate a mapping of setting names to raw strings into ``Settings``."""
    read = _Reader(values)
    discord_token = read.raw("DISCORD_TOKEN")
    if discord_token is None:
        raise ConfigError("DISCORD_TOKEN", "is not set: the bot needs its Discord bot token")
    grok_token = read.raw("GROK_API_TOKEN")
    defaults = Settings(discord_token=Secret(discord_token))
    settings = Settings(
        discord_token=Secret(discord_token),
        grok_api_token=Secret(grok_token) if grok_token else None,
        grok_api_base_url=read.get("GROK_API_BASE_URL", _parse_base_url, DEFAULT_API_BASE_URL),
        database_url=read.get("DATABASE_URL", _parse_database_url, DEFAULT_DATABASE_URL),
        grok_rate_limit_per_minute=read.get(
            "GROK_RATE_LIMIT_PER_MINUTE", _parse_int(1), defaults.grok_rate_limit_per_minute
        ),
        credits_per_video=read.get("CREDITS_PER_VIDEO", _parse_int(1), defaults.credits_per_video),
        default_guild_credits=read.get(
            "DEFAULT_GUILD_CREDITS", _parse_int(0), defaults.default_guild_credits
        ),
        poll_expected_seconds=read.get(
            "POLL_EXPECTED_SECONDS", _parse_positive_float, defaults.poll_expected_seconds
        ),
        job_timeout_minutes=read.get(
            "JOB_TIMEOUT_MINUTES", _parse_int(1), defaults.job_timeout_minutes
        ),
        max_prompt_length=read.get("MAX_PROMPT_LENGTH", _parse_int(1), defaults.max_prompt_length),
        max_image_bytes=read.get("MAX_IMAGE_BYTES", _parse_int(1), defaults.max_image_bytes),
        dev_guild_id=read.get("DEV_GUILD_ID", _parse_snowflake, None),
        owner_ids=read.get("OWNER_IDS", _parse_id_list, frozenset()),
        budget_admins=read.get("BUDGET_ADMINS", _parse_budget_admins, BudgetAdmins.GUILD),
        log_level=read.get("LOG_LEVEL", _parse_log_level, "INFO"),
    )
    if settings.poll_expected_seconds * 1.5 > settings.job_timeout_minutes * 60:
        raise ConfigError(
            "POLL_EXPECTED_SECONDS", "is longer than JOB_TIMEOUT_MINUTES allows a job to run"
        )
    return settings


def _read_environment(
    environ: Mapping[str, str] | None, env_file: Path | None
) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    if env_file is not None and env_file.is_file():
        values.update(dotenv_values(env_file))
    values.update(os.environ if environ is None else environ)
    return values


def database_url_from_env(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> str:
    """Just ``DATABASE_URL``, for maintenance commands that need no Discord token."""
    read = _Reader(_read_environment(environ, env_file))
    return read.get("DATABASE_URL", _parse_database_url, DEFAULT_DATABASE_URL)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Settings from ``.env`` (if present) overlaid by the process environment."""
    return settings_from_mapping(_read_environment(environ, env_file))
