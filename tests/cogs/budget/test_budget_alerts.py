"""/budget alerts end to end: warnings in the admins' channel before the money runs out."""

from __future__ import annotations

from bot.jobs import JobState
from tests.cogs.budget.test_admin import budget_reply
from tests.cogs.conftest import WAIT, BotHarness
from tests.support.discord_standin import PERMISSION_SEND_MESSAGES, Message


def warnings_in(harness: BotHarness) -> list[Message]:
    return [
        message
        for message in harness.standin.messages_in(harness.guild.text_channel.id)
        if message.embeds and "video budget" in message.embeds[0].get("title", "")
    ]


async def test_warnings_come_once_per_threshold_and_ping_only_the_chosen_role(
    harness: BotHarness,
) -> None:
    watchers = harness.standin.add_role(harness.guild, "budget-watchers")
    await harness.start()
    await budget_reply(harness, "set", credits=160)  # four videos
    saved = await budget_reply(
        harness, "alerts on", channel=harness.guild.text_channel, at=50, role=watchers
    )
    assert saved["description"] == (
        f"Budget warnings go to <#{harness.guild.text_channel.id}>: at 50 % of the budget and "
        f"when it's used up, pinging <@&{watchers}>."
    )

    await harness.imagine(prompt="first")
    assert warnings_in(harness) == []
    await harness.imagine(prompt="second")  # 80 of 160: half the budget
    first = await harness.standin.wait_for(lambda: warnings_in(harness)[:1] or None, limit=WAIT)
    (half,) = first
    assert half.embeds[0]["title"] == "⚠️ 50 % of this server's video budget is used"
    description = half.embeds[0]["description"]
    assert "Left: 80 of 160 credits." in description
    assert "credits an hour" in description
    assert "It doesn't reset by itself" in description
    assert half.content == f"<@&{watchers}>"
    assert half.mentions_pinged.roles == {watchers}
    assert not half.mentions_pinged.users

    await harness.imagine(prompt="third")
    await harness.imagine(prompt="fourth")  # nothing left
    both = await harness.standin.wait_for(
        lambda: warnings_in(harness) if len(warnings_in(harness)) == 2 else None, limit=WAIT
    )
    assert both[1].embeds[0]["title"] == "🛑 This server's video budget is used up"
    await harness.wait_for_job(lambda job: job.prompt == "fourth" and job.state == "delivered")
    assert len(warnings_in(harness)) == 2  # each threshold once


async def test_without_a_role_a_warning_pings_nobody(harness: BotHarness) -> None:
    await harness.start()
    await budget_reply(harness, "set", credits=80)
    saved = await budget_reply(harness, "alerts on", channel=harness.guild.text_channel)
    assert "at 80 % of the budget" in saved["description"]
    await harness.imagine(prompt="all of it")
    await harness.imagine(prompt="and the rest")
    warnings = await harness.standin.wait_for(lambda: warnings_in(harness) or None, limit=WAIT)
    assert warnings[0].content == ""
    assert warnings[0].mentions_pinged.roles == set()
    assert warnings[0].mentions_pinged.users == set()


async def test_a_channel_the_bot_cannot_post_in_is_refused_and_nothing_is_saved(
    harness: BotHarness,
) -> None:
    closed = harness.guild.nsfw_channel
    harness.standin.deny_bot(closed, PERMISSION_SEND_MESSAGES)
    await harness.start()
    refused = await budget_reply(harness, "alerts on", channel=closed)
    assert refused["description"] == (
        f"I can't post in <#{closed.id}>. Give me View Channel, Send Messages and Embed Links "
        "there, or pick another channel."
    )
    assert harness.services is not None
    assert await harness.services.budgets.alert_settings(harness.guild.id) is None


async def test_alerts_off_stops_the_warnings(harness: BotHarness) -> None:
    await harness.start()
    await budget_reply(harness, "set", credits=80)
    await budget_reply(harness, "alerts on", channel=harness.guild.text_channel, at=10)
    off = await budget_reply(harness, "alerts off")
    assert off["description"] == "Budget warnings are off."
    again = await budget_reply(harness, "alerts off")
    assert again["description"] == "Budget warnings were already off."

    await harness.imagine(prompt="quietly")
    await harness.wait_for_state(JobState.DELIVERED)
    assert warnings_in(harness) == []
