"""Operator alerts on Discord: DMs to the owners, through the real client and the stand-in."""

from __future__ import annotations

import logging

import pytest

from bot.alerts import AlertKind, OperatorAlerts
from cogs.core.operator import DiscordOperatorSink, OperatorUnreachable
from tests.cogs.conftest import WAIT, BotHarness
from tests.support.discord_standin import User


def owner_ids(*users: User) -> str:
    return ",".join(str(user.id) for user in users)


async def test_each_owner_gets_one_dm_and_a_repeat_within_the_hour_sends_nothing(
    harness: BotHarness,
) -> None:
    owner = harness.standin.add_user("owner")
    other = harness.standin.add_user("other-owner")
    bot = await harness.start(OWNER_IDS=owner_ids(owner, other))
    assert harness.services is not None
    sink = DiscordOperatorSink(bot, frozenset({owner.id, other.id}))
    alerts = OperatorAlerts(sink, clock=harness.services.infrastructure.clock)

    sent = await alerts.alert(AlertKind.KEY_REFUSED, "HTTP 401 from POST /v1/generate")
    again = await alerts.alert(AlertKind.KEY_REFUSED, "HTTP 401 again")

    assert (sent, again) == (True, False)
    for user in (owner, other):
        dm = await harness.standin.wait_for_direct_message(user, limit=WAIT)
        [only] = harness.standin.direct_messages(user)
        assert only is dm
        assert "refused the API key (401)" in dm.content
        assert "GROK_API_TOKEN" in dm.content
        assert "HTTP 401 from POST /v1/generate" in dm.content
        assert dm.mentions_pinged.nobody
    assert harness.standin.direct_messages(harness.alice) == []


async def test_an_owner_who_refuses_dms_does_not_stop_the_others(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    shy = harness.standin.add_user("shy-owner", accepts_dms=False)
    owner = harness.standin.add_user("owner")
    bot = await harness.start(OWNER_IDS=owner_ids(shy, owner))
    assert harness.services is not None
    sink = DiscordOperatorSink(bot, frozenset({shy.id, owner.id}))
    alerts = OperatorAlerts(sink, clock=harness.services.infrastructure.clock)

    with caplog.at_level(logging.WARNING, logger="cogs.core.operator"):
        sent = await alerts.alert(AlertKind.OUT_OF_CREDITS, "402 insufficient credits")

    assert sent is True
    [dm] = harness.standin.direct_messages(owner)
    assert "out of credits" in dm.content
    assert harness.standin.direct_messages(shy) == []
    refused = [e for e in harness.standin.errors if e.code == 50007]
    assert len(refused) == 1
    assert any(
        str(shy.id) in r.getMessage() and "direct messages" in r.getMessage()
        for r in caplog.records
    )


async def test_an_unknown_owner_id_is_logged_and_skipped(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    owner = harness.standin.add_user("owner")
    bot = await harness.start(OWNER_IDS=str(owner.id))
    sink = DiscordOperatorSink(bot, frozenset({owner.id, 999_999}))

    with caplog.at_level(logging.WARNING, logger="cogs.core.operator"):
        await sink.send("hello operators")

    assert [m.content for m in harness.standin.direct_messages(owner)] == ["hello operators"]
    assert any("999999" in r.getMessage() for r in caplog.records)


async def test_when_no_owner_can_be_reached_the_alert_is_tried_again(
    harness: BotHarness,
) -> None:
    shy = harness.standin.add_user("shy-owner", accepts_dms=False)
    bot = await harness.start(OWNER_IDS=str(shy.id))
    assert harness.services is not None
    sink = DiscordOperatorSink(bot, frozenset({shy.id}))
    alerts = OperatorAlerts(sink, clock=harness.services.infrastructure.clock)

    with pytest.raises(OperatorUnreachable):
        await sink.send("nobody hears this")
    first = await alerts.alert(AlertKind.SERVER_ERRORS, "5 x 502")
    shy.accepts_dms = True
    second = await alerts.alert(AlertKind.SERVER_ERRORS, "5 x 503")

    assert (first, second) == (False, True)
    [dm] = harness.standin.direct_messages(shy)
    assert "5 x 503" in dm.content
