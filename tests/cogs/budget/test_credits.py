"""/credits end to end: any member sees what is left for them and their videos on the way."""

from __future__ import annotations

from bot.jobs import JobState
from tests.cogs.budget.test_admin import fields, private_embed, reply_to
from tests.cogs.conftest import BotHarness


async def test_credits_show_a_members_own_use_and_videos_on_the_way(
    harness: BotHarness,
) -> None:
    await harness.start()
    harness.simulator.config.min_seconds = harness.simulator.config.max_seconds = 5
    record = await harness.imagine(harness.alice, prompt="a [slow] *cat*")
    await harness.wait_for_state(JobState.RUNNING)
    reply = await reply_to(harness, await harness.credits(harness.alice))
    assert reply.ephemeral
    (embed,) = reply.embeds
    values = fields(embed)
    assert values["Left"] == "360 credits (9 videos)"
    assert values["Resets"] == "never"
    assert values["Your use"] == "40 credits (1 video), no personal cap"
    assert record.original is not None
    link = (
        f"https://discord.com/channels/{harness.guild.id}/"
        f"{harness.guild.text_channel.id}/{record.original.id}"
    )
    line = values["Your videos on the way"]
    assert line.startswith(f"[a (slow) \\*cat\\*]({link}) · being made · asked <t:")
    theirs = fields(await private_embed(harness, await harness.credits(harness.bob)))
    assert theirs["Your videos on the way"] == "None right now."
