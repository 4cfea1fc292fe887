"""Dry run: with only a Discord token, the bot makes sample videos with its built-in simulator."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.app import build_services
from bot.config import settings_from_mapping
from bot.simulator import SimulatorConfig, sample_video
from cogs.client import ImagineBot
from tests.cogs.conftest import WAIT, BotHarness
from tests.cogs.test_imagine import is_result, texts


async def test_a_dry_run_shows_the_whole_video_flow(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_from_mapping(
        {
            "DISCORD_TOKEN": harness.standin.token,
            "DATABASE_URL": harness.database_url,
            "DEFAULT_GUILD_CREDITS": "400",
            "POLL_EXPECTED_SECONDS": "0.3",
        }
    )
    assert settings.dry_run
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        services = await build_services(
            settings,
            simulator_config=SimulatorConfig(min_seconds=0.2, max_seconds=0.4),
            poll_min_interval=0.05,
        )
    assert any("DRY RUN" in record.getMessage() for record in caplog.records)
    assert services.simulator is not None
    bot = ImagineBot(services, guild_ready_timeout=0.01)
    await bot.login(harness.standin.token)
    task = asyncio.create_task(bot.connect())
    try:
        async with asyncio.timeout(WAIT):
            await bot.wait_until_ready()
        record = await harness.imagine(prompt="a lighthouse at dusk")
        progress = await harness.standin.wait_for(
            lambda: record.original if record.original and record.original.embeds else None,
            limit=WAIT,
        )
        assert "Dry run" in texts(progress)
        result = await harness.wait_for_message(is_result)
        assert [attachment.data for attachment in result.attachments] == [sample_video()]
        assert services.simulator.count("POST", "/v1/generate") == 1
    finally:
        await bot.close()
        await asyncio.gather(task, return_exceptions=True)
        await services.close()
