"""Dry run: with only a Discord token, the bot makes sample videos with its built-in simulator."""

from __future__ import annotations

import logging

import pytest

from bot.simulator import sample_video
from tests.cogs.conftest import WAIT, BotHarness, is_result, texts


async def test_a_dry_run_shows_the_whole_video_flow(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        await harness.start(GROK_API_TOKEN="")
    assert harness.services is not None
    assert harness.services.settings.dry_run
    assert any("DRY RUN" in record.getMessage() for record in caplog.records)
    simulator = harness.services.infrastructure.simulator
    assert simulator is not None
    record = await harness.imagine(prompt="a lighthouse at dusk")
    progress = await harness.standin.wait_for(
        lambda: record.original if record.original and record.original.embeds else None,
        limit=WAIT,
    )
    assert "Dry run" in texts(progress)
    result = await harness.wait_for_message(is_result)
    assert [attachment.data for attachment in result.attachments] == [sample_video()]
    assert simulator.count("POST", "/v1/generate") == 1
    assert harness.simulator.count("POST", "/v1/generate") == 0  # the real API saw nothing
