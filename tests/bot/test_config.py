import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from bot.config import (
    DEFAULT_DATABASE_URL,
    BudgetAdmins,
    ConfigError,
    Settings,
    database_url_from_env,
    load_settings,
    settings_from_mapping,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_only_the_discord_token():
    settings = settings_from_mapping({"DISCORD_TOKEN": "abc.def"})
    assert settings.discord_token.get_secret_value() == "abc.def"
    assert settings.grok_api_token is None
    assert settings.dry_run
    assert settings.grok_api_base_url == "https://grokimagineapi.com"
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.grok_rate_limit_per_minute == 100
    assert settings.credits_per_video == 40
    assert settings.default_guild_credits == 0
    assert settings.budget_admins is BudgetAdmins.GUILD
    assert settings.owner_ids == frozenset()
    assert settings.dev_guild_id is None


def test_every_setting_is_read():
    settings = settings_from_mapping(
        {
            "DISCORD_TOKEN": "t",
            "GROK_API_TOKEN": "g",
            "GROK_API_BASE_URL": "http://127.0.0.1:8089/",
            "DATABASE_URL": "postgresql+asyncpg://u@h/db",
            "GROK_RATE_LIMIT_PER_MINUTE": "1000",
            "CREDITS_PER_VIDEO": "50",
            "DEFAULT_GUILD_CREDITS": "400",
            "POLL_EXPECTED_SECONDS": "90",
            "JOB_TIMEOUT_MINUTES": "20",
            "DEV_GUILD_ID": "123456789012345678",
            "OWNER_IDS": "1, 2,3",
            "BUDGET_ADMINS": "owners",
            "LOG_LEVEL": "debug",
        }
    )
    assert not settings.dry_run
    assert settings.grok_api_base_url == "http://127.0.0.1:8089"
    assert settings.grok_rate_limit_per_minute == 1000
    assert settings.credits_per_video == 50
    assert settings.default_guild_credits == 400
    assert settings.poll_expected_seconds == 90.0
    assert settings.job_timeout_minutes == 20
    assert settings.dev_guild_id == 123456789012345678
    assert settings.owner_ids == {1, 2, 3}
    assert settings.budget_admins is BudgetAdmins.OWNERS
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GROK_RATE_LIMIT_PER_MINUTE", "lots"),
        ("GROK_RATE_LIMIT_PER_MINUTE", "0"),
        ("CREDITS_PER_VIDEO", "-1"),
        ("DEFAULT_GUILD_CREDITS", "1.5"),
        ("POLL_EXPECTED_SECONDS", "0"),
        ("DEV_GUILD_ID", "abc"),
        ("OWNER_IDS", "1,x"),
        ("BUDGET_ADMINS", "everyone"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "mysql://x"),
        ("GROK_API_BASE_URL", "ftp://x"),
    ],
)
def test_a_malformed_setting_names_the_variable(name, value):
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"DISCORD_TOKEN": "t", name: value})
    assert raised.value.variable == name
    assert str(raised.value).startswith(name)
    assert ".env.example" in str(raised.value)


def test_secrets_never_show_in_repr():
    settings = settings_from_mapping({"DISCORD_TOKEN": "very-secret", "GROK_API_TOKEN": "key-123"})
    shown = repr(settings) + str(settings)
    assert "very-secret" not in shown
    assert "key-123" not in shown
    assert "**********" in shown


def test_environment_overrides_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=from-file\nCREDITS_PER_VIDEO=30\n")
    settings = load_settings({"CREDITS_PER_VIDEO": "45"}, env_file)
    assert settings.discord_token.get_secret_value() == "from-file"
    assert settings.credits_per_video == 45


def test_the_process_environment_wins_over_the_env_file(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=from-file\nOWNER_IDS=1, 2\nLOG_LEVEL=debug\n")
    monkeypatch.setenv("DISCORD_TOKEN", "from-environment")
    monkeypatch.setenv("LOG_LEVEL", "error")
    settings = load_settings(env_file=env_file)
    assert settings.discord_token.get_secret_value() == "from-environment"
    assert settings.log_level == "ERROR"
    assert settings.owner_ids == {1, 2}


def test_a_missing_env_file_is_fine(tmp_path):
    settings = load_settings({"DISCORD_TOKEN": "t"}, tmp_path / "absent.env")
    assert settings.discord_token.get_secret_value() == "t"


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_a_blank_value_counts_as_unset(blank):
    settings = settings_from_mapping(
        {"DISCORD_TOKEN": "t", "GROK_API_TOKEN": blank, "CREDITS_PER_VIDEO": blank}
    )
    assert settings.grok_api_token is None
    assert settings.dry_run
    assert settings.credits_per_video == 40
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"DISCORD_TOKEN": blank})
    assert raised.value.variable == "DISCORD_TOKEN"


def test_a_blank_value_in_the_env_file_counts_as_unset(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('DISCORD_TOKEN=t\nGROK_API_TOKEN=\nDEV_GUILD_ID="  "\n')
    settings = load_settings({}, env_file)
    assert settings.grok_api_token is None
    assert settings.dev_guild_id is None


def test_values_are_stripped():
    settings = settings_from_mapping(
        {"DISCORD_TOKEN": " t ", "CREDITS_PER_VIDEO": " 45 ", "GROK_API_BASE_URL": " http://x/ "}
    )
    assert settings.discord_token.get_secret_value() == "t"
    assert settings.credits_per_video == 45
    assert settings.grok_api_base_url == "http://x"


def test_error_messages_are_one_line_naming_the_variable():
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({})
    assert str(raised.value) == (
        "DISCORD_TOKEN is not set: the bot needs its Discord bot token (see .env.example)"
    )
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"DISCORD_TOKEN": "t", "GROK_RATE_LIMIT_PER_MINUTE": "0"})
    assert str(raised.value) == (
        "GROK_RATE_LIMIT_PER_MINUTE must be at least 1: '0' (see .env.example)"
    )
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"DISCORD_TOKEN": "t", "BUDGET_ADMINS": "everyone"})
    assert str(raised.value) == (
        "BUDGET_ADMINS must be 'guild' or 'owners': 'everyone' (see .env.example)"
    )


def test_a_malformed_secret_is_never_shown():
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"DISCORD_TOKEN": "very-secret", "CREDITS_PER_VIDEO": "x"})
    assert "very-secret" not in str(raised.value)


def test_budget_admins_ignores_case():
    settings = settings_from_mapping({"DISCORD_TOKEN": "t", "BUDGET_ADMINS": "Owners"})
    assert settings.budget_admins is BudgetAdmins.OWNERS


def test_polling_must_fit_in_the_job_timeout():
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(
            {"DISCORD_TOKEN": "t", "POLL_EXPECTED_SECONDS": "100", "JOB_TIMEOUT_MINUTES": "2"}
        )
    assert raised.value.variable == "POLL_EXPECTED_SECONDS"
    settings = settings_from_mapping(
        {"DISCORD_TOKEN": "t", "POLL_EXPECTED_SECONDS": "80", "JOB_TIMEOUT_MINUTES": "2"}
    )
    assert settings.poll_expected_seconds == 80.0


def test_settings_are_immutable():
    settings = settings_from_mapping({"DISCORD_TOKEN": "t"})
    with pytest.raises(ValidationError):
        settings.credits_per_video = 1


def test_direct_construction_reads_no_environment_or_env_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("GROK_API_TOKEN=from-file\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CREDITS_PER_VIDEO", "7")
    settings = Settings(discord_token=SecretStr("t"))
    assert settings.dry_run
    assert settings.credits_per_video == 40


def test_database_url_needs_no_discord_token(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=postgresql+asyncpg://u@file/db\n")
    assert database_url_from_env({}, env_file) == "postgresql+asyncpg://u@file/db"
    assert database_url_from_env({}, None) == DEFAULT_DATABASE_URL
    url = "sqlite+aiosqlite:///x.sqlite3"
    assert database_url_from_env({"DATABASE_URL": url}, env_file) == url
    with pytest.raises(ConfigError) as raised:
        database_url_from_env({"DATABASE_URL": "mysql://x"}, None)
    assert raised.value.variable == "DATABASE_URL"


def _run_bot(tmp_path, env):
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_discord_token_is_one_line_and_exit_2(tmp_path):
    result = _run_bot(tmp_path, {})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DISCORD_TOKEN" in lines[0]
    assert ".env.example" in lines[0]
    assert "Traceback" not in result.stderr


def test_malformed_setting_is_one_line_and_exit_2(tmp_path):
    result = _run_bot(tmp_path, {"DISCORD_TOKEN": "t", "CREDITS_PER_VIDEO": "many"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "imagine-bot: CREDITS_PER_VIDEO is malformed: 'many' (see .env.example)"
    ]


def test_env_example_and_readme_document_every_setting():
    names = {name.upper() for name in Settings.model_fields}
    assert len(names) >= 15
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in sorted(names):
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name
        assert f"`{name}`" in readme, name
