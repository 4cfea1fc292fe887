"""The command line's logging: a start-up summary the operator can use, and no alembic chatter."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot import user_agent
from bot.cli import configure_logging, log_startup, main
from bot.config import Settings, settings_from_mapping
from bot.db import Database

POSTGRES_URL = "postgresql+asyncpg://user:secret@db.example:5432/imagine"
TOKEN = "discord-token-123"
VARIABLES = (
    "DISCORD_TOKEN",
    "GROK_API_TOKEN",
    "DATABASE_URL",
    "GROK_RATE_LIMIT_PER_MINUTE",
    "LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging() takes over the root logger: give it back as it was."""
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in ("alembic", "discord")]
    handlers, level = root.handlers[:], root.level
    levels = [logger.level for logger in loggers]
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger, saved in zip(loggers, levels, strict=True):
        logger.setLevel(saved)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No .env and none of the bot's variables: each test sets what it needs."""
    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def configure(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    configure_logging(settings)
    # configure_logging replaces the root logger's handlers, caplog's among them.
    logging.getLogger().addHandler(caplog.handler)


def startup_lines(settings: Settings, caplog: pytest.LogCaptureFixture) -> list[str]:
    configure(settings, caplog)
    caplog.clear()
    log_startup(settings)
    assert all(record.levelno == logging.INFO for record in caplog.records)
    return [record.getMessage() for record in caplog.records]


def test_startup_summary_names_version_database_dry_run_and_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_from_mapping({"DISCORD_TOKEN": TOKEN, "DATABASE_URL": POSTGRES_URL})

    lines = startup_lines(settings, caplog)

    text = "\n".join(lines)
    version = user_agent().removeprefix("imagine-bot/")
    assert f"imagine-bot {version}" in lines[0]
    assert "postgresql+asyncpg://user:***@db.example:5432/imagine" in text
    assert "secret" not in text
    assert "dry run: yes" in text
    assert "100 requests/min" in text
    assert len(lines) == 4


def test_startup_summary_for_a_real_api_key(caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_from_mapping(
        {
            "DISCORD_TOKEN": TOKEN,
            "GROK_API_TOKEN": "grok-api-key-456",
            "GROK_RATE_LIMIT_PER_MINUTE": "1000",
        }
    )

    text = "\n".join(startup_lines(settings, caplog))

    assert "dry run: no" in text
    assert "dry run: yes" not in text
    assert "1000 requests/min" in text
    assert "sqlite+aiosqlite:///data/imagine-bot.sqlite3" in text
    assert "grok-api-key-456" not in text


async def test_migrations_log_nothing_below_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    configure(settings_from_mapping({"DISCORD_TOKEN": TOKEN, "DATABASE_URL": url}), caplog)
    caplog.clear()
    database = Database.from_url(url)
    try:
        await database.upgrade()
        assert await database.current_revision() is not None
    finally:
        await database.dispose()

    alembic_info = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("alembic") and record.levelno < logging.WARNING
    ]
    assert alembic_info == []


def test_db_upgrade_command_is_quiet_and_hides_the_password(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{environment / 'bot.sqlite3'}")

    assert main(["db", "upgrade"]) == 0

    captured = capsys.readouterr()
    assert "the database is up to date" in captured.out
    assert "upgrading database: sqlite+aiosqlite:///" in captured.err
    assert "alembic" not in captured.err
    assert (environment / "bot.sqlite3").is_file()


def test_run_logs_the_summary_before_starting_the_bot(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[Settings] = []

    async def fake_run(settings: Settings) -> int:
        logging.getLogger("cogs.main").info("run called")
        started.append(settings)
        return 0

    # A stand-in for the Discord side: this test is about what main() logs before it.
    monkeypatch.setitem(sys.modules, "cogs.main", SimpleNamespace(run=fake_run))
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)

    assert main([]) == 0

    err = capsys.readouterr().err
    assert len(started) == 1
    assert err.index("dry run: yes") < err.index("run called")
    assert "user:***@db.example" in err
    assert "secret" not in err
    assert TOKEN not in err
