"""The one error path: anything unexpected becomes a short apology with an id to quote."""

from __future__ import annotations

import logging
import re

import pytest

from tests.cogs.conftest import WAIT, BotHarness, texts
from tests.support.discord_standin import MESSAGE_FLAG_EPHEMERAL


async def test_an_unexpected_error_is_an_apology_with_an_error_id(
    harness: BotHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.start()
    assert harness.services is not None

    async def broken_start(*_: object) -> None:
        raise RuntimeError("the database caught fire")

    # Fault injection: the failure must travel the real error path to the member.
    monkeypatch.setattr(harness.services.imagine, "start", broken_start)
    with caplog.at_level(logging.ERROR, logger="cogs.core.errors"):
        record = await harness.imagine(prompt="a cat")
        reply = await harness.standin.wait_for(lambda: record.followups or None, limit=WAIT)
    assert reply[0].flags & MESSAGE_FLAG_EPHEMERAL
    shown = texts(reply[0])
    assert "something went wrong" in shown
    error_id = re.search(r"`([0-9a-f]{8})`", shown)
    assert error_id is not None
    logged = [r for r in caplog.records if error_id.group(1) in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
    assert "database caught fire" not in shown
    assert record.original is not None
    assert record.original.deleted  # the public "thinking…" placeholder is gone
