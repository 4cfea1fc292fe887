"""Settings: read once at start-up from the environment and ``.env``, validated, immutable.

Nothing here runs at import time; ``load_settings()`` is called by the entry point and the
resulting ``Settings`` is passed to whatever needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/imagine-bot.sqlite3"
DEFAULT_API_BASE_URL = "https://grokimagineapi.com"


class ConfigError(Exception):
    """A setting is missing or malformed. ``str()`` is the one line shown to the operator."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable} {problem} (see .env.example)")


class LogFormat(StrEnum):
    """Plain lines for a terminal, or one JSON object per line for a log collector."""

    TEXT = "text"
    JSON = "json"


class BudgetAdmins(StrEnum):
    """Who may raise a server's budget: its own admins, or only the bot's owners."""

    GUILD = "guild"
    OWNERS = "owners"


def _base_url(raw: str) -> str:
    if not raw.startswith(("https://", "http://")):
        raise ValueError("must start with https:// or http://")
    return raw.rstrip("/")


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
    return raw


def _log_level(raw: str) -> str:
    if raw.upper() not in logging.getLevelNamesMapping():
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return raw.upper()


def _shard_ids(raw: object) -> object:
    """``0,1`` or ``0-3`` (or both: ``0-1,4``) → the list of shard ids."""
    if not isinstance(raw, str):
        return raw
    ids: list[int] = []
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise ValueError("must be shard ids like 0,1 or 0-3") from None
        if high < low:
            raise ValueError("must be shard ids like 0,1 or 0-3")
        ids.extend(range(low, high + 1))
    return ids


def _comma_separated(raw: object) -> object:
    if isinstance(raw, str):
        return [part for part in raw.replace(" ", "").split(",") if part]
    return raw


AtLeastOne = Annotated[int, Field(ge=1)]
Snowflake = Annotated[int, Field(gt=0)]
DatabaseUrl = Annotated[str, AfterValidator(_database_url)]


class _FromEnvironment(BaseSettings):
    """An environment mapping (passed in, so tests can supply their own) over an optional file."""

    # No env_file here: only load_settings() names one, so Settings(...) in tests reads nothing.
    model_config = SettingsConfigDict(frozen=True, env_file=None, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment arrives as keyword arguments (see _from), and wins over .env.
        return init_settings, dotenv_settings

    @model_validator(mode="before")
    @classmethod
    def _blank_means_unset(cls, data: Any) -> Any:
        """``KEY=`` in .env or an exported-but-empty variable means "use the default"."""
        if not isinstance(data, dict):
            return data
        return {
            name: value.strip() if isinstance(value, str) else value
            for name, value in data.items()
            if value is not None and not (isinstance(value, str) and not value.strip())
        }

    @classmethod
    def _from(cls, environ: Mapping[str, str | None], env_file: Path | None) -> Self:
        values = {
            name: environ[name.upper()] for name in cls.model_fields if name.upper() in environ
        }
        try:
            return cls(_env_file=env_file, **values)
        except ValidationError as error:
            raise _config_error(cls, error.errors()[0]) from None


def _config_error(model: type[BaseSettings], error: ErrorDetails) -> ConfigError:
    """The operator's one line for pydantic's first complaint, naming the variable."""
    field = str(error["loc"][0])
    context = error.get("ctx", {})
    match error["type"]:
        case "missing":
            return ConfigError(
                field.upper(), f"is not set: {model.model_fields[field].description}"
            )
        case "greater_than_equal":
            problem = f"must be at least {context['ge']}"
        case "greater_than":
            problem = f"must be greater than {context['gt']}"
        case "value_error":
            problem = str(context["error"])
        case "enum":
            problem = f"must be {context['expected']}"
        case _:
            problem = "is malformed"
    return ConfigError(field.upper(), f"{problem}: {error['input']!r}")


class Settings(_FromEnvironment):
    """Every operator setting; each reads the variable named by its upper-cased attribute.

    The README's configuration table lists the same names.
    """

    discord_token: SecretStr = Field(description="the bot needs its Discord bot token")
    grok_api_token: SecretStr | None = None
    grok_api_base_url: Annotated[str, AfterValidator(_base_url)] = DEFAULT_API_BASE_URL
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL
    grok_rate_limit_per_minute: AtLeastOne = 100
    credits_per_video: AtLeastOne = 40
    default_guild_credits: Annotated[int, Field(ge=0)] = 0
    poll_expected_seconds: Annotated[float, Field(gt=0)] = 120.0
    job_timeout_minutes: AtLeastOne = 30
    max_prompt_length: AtLeastOne = 2000
    max_image_bytes: AtLeastOne = 10 * 1024 * 1024
    dev_guild_id: Snowflake | None = None
    # NoDecode: "1, 2,3" is a plain list, not JSON.
    owner_ids: Annotated[frozenset[Snowflake], NoDecode, BeforeValidator(_comma_separated)] = (
        frozenset()
    )
    budget_admins: Annotated[BudgetAdmins, BeforeValidator(str.lower)] = BudgetAdmins.GUILD
    log_level: Annotated[str, AfterValidator(_log_level)] = "INFO"
    log_format: Annotated[LogFormat, BeforeValidator(str.lower)] = LogFormat.TEXT
    # The metrics and health endpoints: off unless a port is given.
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    metrics_host: str = "127.0.0.1"
    metrics_per_guild: bool = False  # a label per server: only if the operator asks (cardinality)
    # Several processes: SHARD_COUNT in all, SHARD_IDS this process's (unset: one process).
    shard_count: AtLeastOne | None = None
    shard_ids: Annotated[
        tuple[Annotated[int, Field(ge=0)], ...] | None, NoDecode, BeforeValidator(_shard_ids)
    ] = None

    @model_validator(mode="after")
    def _shards_fit(self) -> Self:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ConfigError("SHARD_IDS", "needs SHARD_COUNT, the number of shards in all")
        if not self.shard_ids or max(self.shard_ids) >= self.shard_count:
            raise ConfigError(
                "SHARD_IDS", f"must be shard ids from 0 to {self.shard_count - 1} (SHARD_COUNT)"
            )
        if self.shares_gateway and self.database_url.startswith("sqlite"):
            raise ConfigError(
                "DATABASE_URL",
                "is SQLite, which serves one process only: several processes (SHARD_IDS covers "
                "part of SHARD_COUNT) need PostgreSQL",
            )
        return self

    @property
    def shares_gateway(self) -> bool:
        """Other processes run the rest of the shards on the same database."""
        return self.shard_ids is not None and set(self.shard_ids) != set(
            range(self.shard_count or 0)
        )

    @property
    def syncs_commands(self) -> bool:
        """One process syncs the commands: the one that runs shard 0 (or the only one)."""
        return self.shard_ids is None or 0 in self.shard_ids

    @model_validator(mode="after")
    def _poll_fits_in_timeout(self) -> Self:
        if self.poll_expected_seconds * 1.5 > self.job_timeout_minutes * 60:
            raise ConfigError(
                "POLL_EXPECTED_SECONDS", "is longer than JOB_TIMEOUT_MINUTES allows a job to run"
            )
        return self

    @property
    def dry_run(self) -> bool:
        """No API token: the bot talks to its built-in simulator and makes no real videos."""
        return self.grok_api_token is None


class _DatabaseOnly(_FromEnvironment):
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL


def settings_from_mapping(values: Mapping[str, str | None]) -> Settings:
    """Validate a mapping of variable names to raw strings (nothing else is read)."""
    return Settings._from(values, env_file=None)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Settings from ``.env`` (if present) overlaid by the process environment."""
    return Settings._from(os.environ if environ is None else environ, env_file)


def database_url_from_env(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> str:
    """Just ``DATABASE_URL``, for maintenance commands that need no Discord token."""
    return _DatabaseOnly._from(os.environ if environ is None else environ, env_file).database_url
