"""Apps → Animate and the Remix button: a request form (modal) end to end through Discord."""

from __future__ import annotations

from typing import Any

from bot.jobs import JobState
from tests.cogs.conftest import WAIT, BotHarness, is_result, texts
from tests.support.discord_standin import COMMAND_MESSAGE, InteractionRecord

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def form_fields(record: InteractionRecord) -> dict[str, dict[str, Any]]:
    """The modal's inputs by custom_id (each Label's component)."""
    assert record.modal is not None
    return {
        label["component"]["custom_id"]: label["component"]
        for label in record.modal["components"]
        if label.get("type") == 18
    }


def chosen(field: dict[str, Any]) -> list[str]:
    return [option["value"] for option in field["options"] if option.get("default")]


async def remaining_credits(harness: BotHarness) -> int:
    assert harness.services is not None
    return (await harness.services.budgets.view(harness.guild.id)).remaining


async def test_animate_opens_a_form_with_the_nearest_ratio_and_makes_a_video(
    harness: BotHarness,
) -> None:
    await harness.start()
    synced = harness.standin.command("Animate", guild_id=None, command_type=COMMAND_MESSAGE)
    assert synced is not None
    assert synced["name_localizations"]["de"] == "Animieren"
    picture = harness.standin.make_attachment("cat.png", "image/png", PNG, width=1080, height=1920)
    post = await harness.standin.post_member_message(
        harness.guild.text_channel, harness.bob, "my cat", attachments=[picture]
    )

    opened = await harness.standin.message_command(post, "Animate", harness.alice)
    await harness.standin.wait_until_acked(opened, limit=WAIT)

    assert opened.response_type == 9
    assert opened.modal is not None
    assert opened.modal["title"] == "Animate this image"
    fields = form_fields(opened)
    assert chosen(fields["ratio"]) == ["9:16"]  # the picture is portrait
    assert chosen(fields["mode"]) == ["normal"]
    # Spicy takes no images, and this channel is not age-restricted anyway.
    assert "spicy" not in [option["value"] for option in fields["mode"]["options"]]
    assert harness.simulator.count("POST", "/v1/generate") == 0  # nothing spent by opening

    submitted = await harness.standin.submit_modal(
        opened, {"prompt": "the cat starts to dance", "mode": ["fun"]}
    )
    await harness.standin.wait_until_acked(submitted, limit=WAIT)
    result = await harness.wait_for_message(is_result)
    job = await harness.wait_for_state(JobState.DELIVERED)

    assert job.member_id == harness.alice.id
    assert job.image_urls == [picture.url]
    assert (job.prompt, job.mode, job.ratio) == ("the cat starts to dance", "fun", "9:16")
    assert "the cat starts to dance" in texts(result)
    assert await remaining_credits(harness) == 400 - 40


async def test_animate_takes_an_embedded_image_and_speaks_german(harness: BotHarness) -> None:
    await harness.start()
    url = "https://images.example/sunset.jpg"
    post = await harness.standin.post_member_message(
        harness.guild.text_channel,
        harness.bob,
        embeds=[{"image": {"url": url, "width": 1500, "height": 1000}}],
    )
    opened = await harness.standin.message_command(post, "Animate", harness.alice, locale="de")
    await harness.standin.wait_until_acked(opened, limit=WAIT)
    assert opened.modal is not None
    assert opened.modal["title"] == "Dieses Bild animieren"
    assert chosen(form_fields(opened)["ratio"]) == ["3:2"]

    submitted = await harness.standin.submit_modal(opened, {"prompt": "Wellen im Abendlicht"})
    await harness.standin.wait_until_acked(submitted, limit=WAIT)
    job = await harness.wait_for_state(JobState.DELIVERED)
    assert job.image_urls == [url]
    assert job.locale == "de"


async def test_animate_on_a_message_without_an_image_answers_privately_and_costs_nothing(
    harness: BotHarness,
) -> None:
    await harness.start()
    document = harness.standin.make_attachment("notes.txt", "text/plain", b"hello")
    post = await harness.standin.post_member_message(
        harness.guild.text_channel, harness.bob, "just words", attachments=[document]
    )
    record = await harness.standin.message_command(post, "Animate", harness.alice)
    await harness.standin.wait_until_acked(record, limit=WAIT)

    assert record.response_type == 4
    assert record.original is not None
    assert record.original.flags & 64  # ephemeral: only the member sees it
    assert "no image to animate" in texts(record.original)
    assert record.modal is None
    assert await harness.jobs() == []
    assert await remaining_credits(harness) == 400


async def test_remix_opens_the_request_filled_in_and_charges_whoever_sends_it(
    harness: BotHarness,
) -> None:
    await harness.start()
    await harness.imagine(prompt="a lighthouse at night", ratio="1:1", mode="fun")
    first = await harness.wait_for_message(is_result)
    original = await harness.wait_for_state(JobState.DELIVERED)
    await harness.restart()  # the button's state is in its custom_id
    remix_id = next(c for c in first.custom_ids() if c.startswith("imagine:remix:"))

    opened = await harness.standin.click_button(first, remix_id, harness.bob)
    await harness.standin.wait_until_acked(opened, limit=WAIT)
    assert opened.response_type == 9
    assert opened.modal is not None
    assert opened.modal["title"] == "Remix this video"
    fields = form_fields(opened)
    assert fields["prompt"]["value"] == "a lighthouse at night"
    assert chosen(fields["mode"]) == ["fun"]
    assert chosen(fields["ratio"]) == ["1:1"]

    submitted = await harness.standin.submit_modal(
        opened, {"prompt": "a lighthouse in a storm", "ratio": ["16:9"]}, user=harness.bob
    )
    await harness.standin.wait_until_acked(submitted, limit=WAIT)
    remixed = await harness.wait_for_job(
        lambda job: job.reroll_of == original.id and job.state == JobState.DELIVERED
    )
    assert remixed.member_id == harness.bob.id
    assert (remixed.prompt, remixed.mode, remixed.ratio) == (
        "a lighthouse in a storm",
        "fun",
        "16:9",
    )
    assert await remaining_credits(harness) == 400 - 80
    assert await harness.ledger_problems() == []
