"""/imagine end to end: a member's command through Discord, the store, the API and back."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.jobs import JobState
from bot.simulator import Fault, sample_video
from tests.cogs.conftest import WAIT, BotHarness, is_result, texts
from tests.support.discord_standin import MESSAGE_FLAG_EPHEMERAL

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


async def remaining_credits(harness: BotHarness) -> int:
    assert harness.services is not None
    view = await harness.services.budgets.view(harness.guild.id)
    return view.remaining


async def test_happy_path_with_an_image_posts_the_video_and_settles(harness: BotHarness) -> None:
    await harness.start()
    image = harness.standin.make_attachment("cat.png", "image/png", PNG)
    record = await harness.imagine(prompt="a cat surfing", ratio="9:16", mode="fun", image=image)

    assert record.response_type == 5  # deferred first
    result = await harness.wait_for_message(is_result)
    job = await harness.wait_for_state(JobState.DELIVERED)

    assert [a.data for a in result.attachments] == [sample_video()]
    assert result.attachments[0].filename.endswith(".mp4")
    assert result.mentions_pinged.users == {harness.alice.id}
    assert not result.mentions_pinged.everyone
    assert "a cat surfing" in texts(result)
    assert job.task_id is not None
    assert job.image_urls == [image.url]
    sent = harness.simulator.tasks[job.task_id].request
    assert sent == {
        "mode": "fun",
        "prompt": "a cat surfing",
        "ratio": "9:16",
        "images": [image.url],
    }
    assert await remaining_credits(harness) == 400 - 40
    assert harness.simulator.count("POST", "/v1/generate") == 1
    progress = record.original
    assert progress is not None
    assert "✅" in texts(progress)


async def test_a_video_too_large_to_attach_is_posted_as_a_link(harness: BotHarness) -> None:
    await harness.start()
    await harness.imagine(prompt="a big one", attachment_size_limit=1024)
    result = await harness.wait_for_message(is_result)
    assert result.attachments == []
    assert "/videos/" in texts(result)
    assert "expires" in texts(result)  # the API's links are temporary: the member is told


@pytest.fixture
def big_clip(tmp_path: Path) -> Path:
    """Three seconds of a busy test picture at 3 Mbit/s: about 1.1 MB."""
    clip = tmp_path / "big.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=3"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3M", "-pix_fmt", "yuv420p"),
            str(clip),
        ],
        check=True,
    )
    return clip


async def test_a_video_over_the_upload_limit_is_re_encoded_to_fit(
    harness: BotHarness, big_clip: Path
) -> None:
    clip = big_clip
    limit = 400_000
    assert clip.stat().st_size > 2 * limit
    await harness.start()
    harness.simulator.config.video_file = str(clip)

    await harness.imagine(prompt="too big to attach", attachment_size_limit=limit)
    result = await harness.wait_for_message(is_result)

    assert len(result.attachments) == 1
    attached = result.attachments[0]
    assert attached.filename.endswith(".mp4")
    assert 0 < len(attached.data) <= limit
    assert "/videos/" not in texts(result)  # no expiring link


async def test_a_failed_task_explains_itself_and_refunds(harness: BotHarness) -> None:
    await harness.start()
    record = await harness.imagine(prompt="[fail:inappropriate] something rude")
    job = await harness.wait_for_state(JobState.FAILED)
    assert job.error_text == "Inappropriate content, please try another prompt."
    await harness.standin.wait_for(
        lambda: record.original and "No video" in texts(record.original), limit=WAIT
    )
    shown = texts(record.original)
    assert "flagged the prompt as inappropriate" in shown
    assert "40 reserved credits went back" in shown
    assert job.task_id in shown
    assert await remaining_credits(harness) == 400


async def test_a_refused_budget_says_what_is_left_and_calls_no_api(harness: BotHarness) -> None:
    await harness.start(DEFAULT_GUILD_CREDITS="30")
    record = await harness.imagine(prompt="a cat")
    reply = await harness.standin.wait_for(
        lambda: next((m for m in record.followups if m.flags & MESSAGE_FLAG_EPHEMERAL), None),
        limit=WAIT,
    )
    assert "30 credits left (0 videos)" in texts(reply)
    assert "/budget" in texts(reply)
    assert harness.simulator.count("POST", "/v1/generate") == 0
    assert await harness.jobs() == []


async def test_bad_input_is_refused_privately_and_costs_nothing(harness: BotHarness) -> None:
    await harness.start()
    gif = harness.standin.make_attachment("cat.gif", "image/gif", b"GIF89a")
    for options in (
        {"prompt": "   "},
        {"prompt": "x" * 2001},
        {"prompt": "a", "image": gif},
        {"prompt": "a", "mode": "spicy"},
    ):
        record = await harness.imagine(**options)
        # Answered privately at once: no public "thinking…" message, not even for a moment.
        assert record.response_type == 4
        assert record.original is not None
        assert record.original.flags & MESSAGE_FLAG_EPHEMERAL
        assert record.followups == []
    channel = harness.guild.text_channel.id
    assert all(m.ephemeral for m in harness.standin.messages_in(channel, include_deleted=True))
    assert harness.simulator.count("POST", "/v1/generate") == 0
    assert await harness.jobs() == []
    assert await remaining_credits(harness) == 400


async def test_an_expired_interaction_token_delivers_to_the_channel(harness: BotHarness) -> None:
    await harness.start()
    harness.simulator.config.min_seconds = harness.simulator.config.max_seconds = 0.6
    record = await harness.imagine(prompt="slow cat")
    await harness.wait_for_state(JobState.RUNNING)
    harness.standin.expire_interaction(record)
    result = await harness.wait_for_message(is_result)
    assert result.origin == "channel"
    assert result.mentions_pinged.users == {harness.alice.id}
    await harness.wait_for_state(JobState.DELIVERED)


async def test_a_restart_in_the_middle_of_a_job_delivers_exactly_once(harness: BotHarness) -> None:
    await harness.start()
    harness.simulator.config.min_seconds = harness.simulator.config.max_seconds = 1.0
    await harness.imagine(prompt="survives restarts")
    await harness.wait_for_state(JobState.RUNNING)
    await harness.restart()
    await harness.wait_for_state(JobState.DELIVERED)
    await asyncio.sleep(0.3)  # let anything that would wrongly post twice show itself
    results = [
        m for m in harness.standin.messages_in(harness.guild.text_channel.id) if is_result(m)
    ]
    assert len(results) == 1
    assert harness.simulator.count("POST", "/v1/generate") == 1
    assert await remaining_credits(harness) == 360


async def test_everyone_in_a_prompt_never_pings(harness: BotHarness) -> None:
    await harness.start()
    role_id = harness.guild.id  # the @everyone role shares the server's id
    prompt = f"@everyone @here <@&{role_id}> <@{harness.bob.id}> look"
    record = await harness.imagine(prompt=prompt)
    result = await harness.wait_for_message(is_result)
    assert result.mentions_pinged.users == {harness.alice.id}
    assert not result.mentions_pinged.everyone
    assert result.mentions_pinged.roles == frozenset()
    assert record.original is not None
    assert record.original.mentions_pinged.nobody


async def test_a_burst_of_commands_is_acknowledged_in_time(harness: BotHarness) -> None:
    await harness.start(DEFAULT_GUILD_CREDITS="100000")
    records = await asyncio.gather(
        *(
            harness.standin.send_command(
                harness.guild,
                harness.guild.text_channel,
                harness.alice,
                "imagine",
                {"prompt": f"cat {n}"},
            )
            for n in range(40)
        )
    )
    for record in records:
        await harness.standin.wait_until_acked(record, limit=WAIT)
        assert record.response_type == 5
        assert record.ack_latency is not None
        assert record.ack_latency < 3.0


async def test_the_api_refusing_the_request_refunds(harness: BotHarness) -> None:
    await harness.start()
    harness.simulator.inject(Fault.SERVER_ERROR_AFTER_ACCEPT, endpoint="generate")
    record = await harness.imagine(prompt="ambiguous")
    job = await harness.wait_for_state(JobState.FAILED)
    assert job.error_code == "outcome_unknown"
    assert harness.simulator.count("POST", "/v1/generate") == 1
    await harness.standin.wait_for(
        lambda: record.original and "No video" in texts(record.original), limit=WAIT
    )
    assert await remaining_credits(harness) == 400


async def test_delete_button_only_for_the_requester_or_admins(harness: BotHarness) -> None:
    await harness.start()
    await harness.imagine(prompt="delete me")
    result = await harness.wait_for_message(is_result)
    delete_id = next(c for c in result.custom_ids() if c.startswith("imagine:delete:"))

    refused = await harness.standin.click_button(result, delete_id, harness.bob)
    await harness.standin.wait_until_acked(refused, limit=WAIT)
    assert not result.deleted

    allowed = await harness.standin.click_button(result, delete_id, harness.alice)
    await harness.standin.wait_until_acked(allowed, limit=WAIT)
    await harness.standin.wait_for(lambda: result.deleted or None, limit=WAIT)


async def test_reroll_makes_a_new_charged_job_and_survives_a_restart(harness: BotHarness) -> None:
    await harness.start()
    await harness.imagine(prompt="again please", ratio="1:1")
    first = await harness.wait_for_message(is_result)
    await harness.wait_for_state(JobState.DELIVERED)
    await harness.restart()
    reroll_id = next(c for c in first.custom_ids() if c.startswith("imagine:reroll:"))
    click = await harness.standin.click_button(first, reroll_id, harness.bob)
    await harness.standin.wait_until_acked(click, limit=WAIT)
    rerolled = await harness.wait_for_job(lambda job: job.reroll_of is not None)
    assert rerolled.prompt == "again please"
    assert rerolled.ratio == "1:1"
    assert rerolled.member_id == harness.bob.id
    await harness.wait_for_job(lambda job: job.reroll_of is not None and job.state == "delivered")
    assert await remaining_credits(harness) == 400 - 80


async def test_a_crash_between_posting_and_recording_does_not_post_twice(
    harness: BotHarness,
) -> None:
    await harness.start()
    await harness.imagine(prompt="posted once")
    await harness.wait_for_message(is_result)
    job = await harness.wait_for_state(JobState.DELIVERED)
    await harness.stop()
    # What the store looks like when the process died right after Discord took the message.
    engine = create_async_engine(harness.database_url)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE job SET state = 'delivering', delivered_at = NULL, "
                "next_poll_at = created_at WHERE id = :id"
            ),
            {"id": job.id},
        )
    await engine.dispose()
    await harness.start()
    redelivered = await harness.wait_for_state(JobState.DELIVERED)
    assert redelivered.delivery_attempts == 2
    channel_id = harness.guild.text_channel.id
    results = [m for m in harness.standin.messages_in(channel_id) if is_result(m)]
    assert len(results) == 1
    assert await remaining_credits(harness) == 360


async def test_an_admin_can_delete_anyones_video(harness: BotHarness) -> None:
    await harness.start()
    await harness.imagine(prompt="moderated")
    result = await harness.wait_for_message(is_result)
    delete_id = next(c for c in result.custom_ids() if c.startswith("imagine:delete:"))
    click = await harness.standin.click_button(result, delete_id, harness.admin)
    await harness.standin.wait_until_acked(click, limit=WAIT)
    await harness.standin.wait_for(lambda: result.deleted or None, limit=WAIT)


async def test_a_token_refused_right_after_the_acknowledgement_holds_nothing_back(
    harness: BotHarness,
) -> None:
    await harness.start()
    harness.standin.revoke_tokens_on_ack = True
    record = await harness.imagine(prompt="a dead token")
    # Sent at once, not after the poller's grace period for abandoned submissions (60 s).
    await harness.standin.wait_for(
        lambda: harness.simulator.count("POST", "/v1/generate") == 1, limit=5.0
    )
    result = await harness.wait_for_message(is_result)
    job = await harness.wait_for_state(JobState.DELIVERED)
    assert result.origin == "channel"
    assert result.mentions_pinged.users == {harness.alice.id}
    assert job.interaction_token is None
    # The progress message went on through the channel and ends marked done.
    assert record.original is not None
    assert "✅" in texts(record.original)
    await asyncio.sleep(0.3)  # anything that would wrongly post twice shows itself
    results = [
        m for m in harness.standin.messages_in(harness.guild.text_channel.id) if is_result(m)
    ]
    assert len(results) == 1
    # The refused token was tried once, never again.
    refused = [e for e in harness.standin.errors if record.token in e.path]
    assert [(e.status, e.code) for e in refused] == [(401, 50027)]


async def test_after_a_refused_token_a_failure_is_told_through_the_channel(
    harness: BotHarness,
) -> None:
    await harness.start()
    harness.standin.revoke_tokens_on_ack = True
    record = await harness.imagine(prompt="[fail:build] broken")
    await harness.wait_for_state(JobState.FAILED)
    await harness.standin.wait_for(
        lambda: record.original and "No video" in texts(record.original), limit=WAIT
    )
    assert len([e for e in harness.standin.errors if record.token in e.path]) == 1
    assert await remaining_credits(harness) == 400


async def test_a_job_waiting_for_the_rate_budget_shows_its_place_and_can_be_cancelled(
    harness: BotHarness,
) -> None:
    # One request a minute: the first video takes it, the second has to wait its turn.
    await harness.start(GROK_RATE_LIMIT_PER_MINUTE="1")
    await harness.imagine(prompt="first in line")
    await harness.wait_for_job(lambda job: job.state == JobState.RUNNING)
    waiting = await harness.imagine(prompt="second in line")

    await harness.standin.wait_for(
        lambda: waiting.original and "Place 1 in the queue" in texts(waiting.original),
        limit=WAIT,
    )
    progress = waiting.original
    assert progress is not None
    assert "<t:" in texts(progress)  # the expected start, counting down in the client
    cancel_id = next(c for c in progress.custom_ids() if c.startswith("imagine:cancel:"))

    refused = await harness.standin.click_button(progress, cancel_id, harness.bob)
    await harness.standin.wait_until_acked(refused, limit=WAIT)
    assert "Only the member who asked" in texts(refused.original)

    allowed = await harness.standin.click_button(progress, cancel_id, harness.alice)
    await harness.standin.wait_until_acked(allowed, limit=WAIT)
    await harness.standin.wait_for(
        lambda: "Cancelled before it started" in texts(progress) or None, limit=WAIT
    )
    assert "40 reserved credits went back" in texts(progress)
    assert list(progress.custom_ids()) == []  # the button went away with the queue
    cancelled = await harness.wait_for_state(JobState.CANCELLED)
    assert cancelled.prompt == "second in line"
    assert harness.simulator.count("POST", "/v1/generate") == 1
    assert await remaining_credits(harness) == 400 - 40
    assert await harness.ledger_problems() == []


async def test_a_job_already_sent_cannot_be_cancelled(harness: BotHarness) -> None:
    await harness.start(GROK_RATE_LIMIT_PER_MINUTE="1")
    await harness.imagine(prompt="first in line")
    await harness.wait_for_job(lambda job: job.state == JobState.RUNNING)
    waiting = await harness.imagine(prompt="second in line")
    await harness.standin.wait_for(
        lambda: waiting.original and "Place" in texts(waiting.original), limit=WAIT
    )
    progress = waiting.original
    assert progress is not None
    cancel_id = next(c for c in progress.custom_ids() if c.startswith("imagine:cancel:"))
    # Meanwhile another process sent it (the same conditional step a send takes).
    job = await harness.wait_for_job(lambda job: job.prompt == "second in line")
    assert harness.services is not None
    store = harness.services.infrastructure.jobs
    async with harness.database.transaction() as session:
        assert await store.transition(session, job.id, JobState.CREATED, JobState.SUBMITTING)

    click = await harness.standin.click_button(progress, cancel_id, harness.alice)
    await harness.standin.wait_until_acked(click, limit=WAIT)
    await harness.standin.wait_for(lambda: click.followups or None, limit=WAIT)
    assert "can't be cancelled any more" in texts(click.followups[0])
    assert (await harness.wait_for_job(lambda j: j.id == job.id)).state == JobState.SUBMITTING
