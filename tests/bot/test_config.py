import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import (
    DEFAULT_DATABASE_URL,
    BudgetAdmins,
    ConfigError,
    Secret,
    load_settings,
    settings_from_mapping,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_only_the_discord_token():
    settings = settings_from_mapping({"DISCORD_TOKEN": "abc.def"})
    assert settings.discord_token.reveal() == "abc.def"
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
    assert repr(Secret("x")) == "Secret('********')"


def test_environment_overrides_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=from-file\nCREDITS_PER_VIDEO=30\n")
    settings = load_settings({"CREDITS_PER_VIDEO": "45"}, env_file)
    assert settings.discord_token.reveal() == "from-file"
    assert settings.credits_per_video == 45


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
    source = (ROOT / "bot" / "config.py").read_text()
    names = set(re.findall(r'read\.(?:get|raw)\(\s*"([A-Z_]+)"', source))
    assert len(names) >= 15
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in sorted(names):
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name
        assert f"`{name}`" in readme, name
