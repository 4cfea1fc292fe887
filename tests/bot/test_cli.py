"""The command line: logging (a useful start-up summary, no alembic chatter), operator commands."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot import user_agent
from bot.cli import log_startup, main
from bot.config import Settings, settings_from_mapping
from bot.db import Database
from bot.logs import configure_logging
from tests.support.jobs import new_job

POSTGRES_URL = "postgresql+asyncpg://user:secret@db.example:5432/imagine"
TOKEN = "discord-token-123"
VARIABLES = (
    "DISCORD_TOKEN",
    "GROK_API_TOKEN",
    "DATABASE_URL",
    "GROK_RATE_LIMIT_PER_MINUTE",
    "LOG_LEVEL",
)


pytestmark = pytest.mark.usefixtures("restore_logging")


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


# --- operator commands: status, db backup ----------------------------------------------------


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def record_a_job(url: str) -> None:
    """One job with its credits reserved, as the bot records it."""
    from bot.budget import Budgets
    from bot.clock import SystemClock
    from bot.jobs import JobStore

    clock = SystemClock()
    database = Database.from_url(url)
    try:
        async with database.transaction() as session:
            job = await JobStore(clock=clock).create(
                session,
                new_job(prompt="a fox", upload_limit_bytes=1024),
                next_poll_at=clock.now(),
            )
            await Budgets(default_guild_credits=400, clock=clock).reserve(
                session, guild_id=job.guild_id, member_id=job.member_id, cost=40, job_id=job.id
            )
    finally:
        await database.dispose()


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])

    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "status", "db", "upgrade, backup"):
        assert command in out


def test_status_without_a_database_says_to_upgrade_and_creates_nothing(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = environment / "data" / "bot.sqlite3"
    use_database(monkeypatch, sqlite_url(path))

    assert main(["status"]) == 1

    captured = capsys.readouterr()
    assert captured.err.startswith(
        "imagine-bot: the database has no schema yet: run imagine-bot db upgrade"
    )
    assert captured.err.count("\n") == 1
    assert captured.out == ""
    assert not path.exists()
    assert not path.parent.exists()


def test_status_on_an_empty_database_file_says_to_upgrade(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = environment / "bot.sqlite3"
    sqlite3.connect(path).close()
    use_database(monkeypatch, sqlite_url(path))

    assert main(["status"]) == 1

    assert capsys.readouterr().err == (
        "imagine-bot: the database has no schema yet: run imagine-bot db upgrade\n"
    )


def test_status_reports_in_text_and_json(
    environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    use_database(monkeypatch, database_url)
    assert main(["db", "upgrade"]) == 0
    asyncio.run(record_a_job(database_url))
    capsys.readouterr()

    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)

    assert "Jobs: 1 in all, 1 active" in text
    assert "active: created 1, submitting 0, running 0, delivering 0" in text
    assert "spent this period: 0, across 1 servers" in text
    assert "Unknown outcomes to reconcile: none" in text
    assert data["jobs"]["by_state"] == {
        "created": 1,
        "submitting": 0,
        "running": 0,
        "delivering": 0,
        "delivered": 0,
        "rejected": 0,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }
    assert data["credits"]["guilds"] == 1
    assert data["loss"] == {"total": 0, "today": 0, "jobs": 0}
    assert datetime.fromisoformat(data["generated_at"]).tzinfo is not None


def test_status_says_when_the_database_is_unreachable(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_database(monkeypatch, "postgresql+asyncpg://user:secret@127.0.0.1:1/imagine")

    assert main(["status"]) == 1

    err = capsys.readouterr().err
    assert err.startswith("imagine-bot: could not open the database: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert "secret" not in err


def test_db_backup_copies_the_database_and_checks_the_copy(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = environment / "bot.sqlite3"
    target = environment / "backups" / "2026-01-05.sqlite3"
    use_database(monkeypatch, sqlite_url(source))
    assert main(["db", "upgrade"]) == 0
    asyncio.run(record_a_job(sqlite_url(source)))
    capsys.readouterr()

    assert main(["db", "backup", str(target)]) == 0

    out = capsys.readouterr().out
    size = target.stat().st_size
    assert f"copied {source} to {target} ({size:,} bytes)" in out
    assert "integrity check of the copy: ok" in out
    with sqlite3.connect(target) as connection:
        assert connection.execute("SELECT count(*) FROM job").fetchone() == (1,)
    connection.close()


def test_db_backup_refuses_to_overwrite_without_force(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = environment / "bot.sqlite3", environment / "backup.sqlite3"
    use_database(monkeypatch, sqlite_url(source))
    assert main(["db", "upgrade"]) == 0
    target.write_text("an older backup")
    capsys.readouterr()

    assert main(["db", "backup", str(target)]) == 1
    assert capsys.readouterr().err == (
        f"imagine-bot: {target} already exists: pass --force to overwrite it\n"
    )
    assert target.read_text() == "an older backup"

    assert main(["db", "backup", "--force", str(target)]) == 0
    assert "integrity check of the copy: ok" in capsys.readouterr().out
    with sqlite3.connect(target) as connection:
        assert connection.execute("SELECT count(*) FROM job").fetchone() == (0,)
    connection.close()


def test_db_backup_of_postgresql_points_to_pg_dump(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_database(monkeypatch, POSTGRES_URL)

    assert main(["db", "backup", str(environment / "backup.sql")]) == 2

    captured = capsys.readouterr()
    assert captured.err.startswith(
        "imagine-bot: db backup copies SQLite only; for PostgreSQL use "
        'pg_dump "postgresql://user@db.example:5432/imagine" > backup.sql'
    )
    assert captured.err.count("\n") == 1
    assert "secret" not in captured.err
    assert not (environment / "backup.sql").exists()
