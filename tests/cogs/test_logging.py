"""JSON logs of a real job: every line about it carries its ids; no secret gets out."""

from __future__ import annotations

import io
import json

from bot.jobs import JobState
from bot.logs import configure_logging
from tests.cogs.conftest import API_TOKEN, BotHarness


async def test_json_lines_of_a_job_carry_its_ids(
    harness: BotHarness, restore_logging: None
) -> None:
    await harness.start(LOG_FORMAT="json")
    assert harness.services is not None
    stream = io.StringIO()
    configure_logging(harness.services.settings, stream)
    await harness.imagine(prompt="a logged cat")
    job = await harness.wait_for_state(JobState.DELIVERED)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    about_job = [line for line in lines if line.get("job_id") == job.id]
    messages = {line["message"] for line in about_job}
    assert f"job {job.id} submitted as task {job.task_id}" in messages
    assert f"job {job.id} delivered" in messages
    delivered = next(line for line in about_job if line["message"].endswith("delivered"))
    assert delivered["guild_id"] == harness.guild.id
    assert delivered["task_id"] == job.task_id
    assert delivered["idempotency_key"] == job.idempotency_key
    assert {"time", "level", "logger", "message"} <= delivered.keys()
    everything = stream.getvalue()
    assert harness.standin.token not in everything
    assert API_TOKEN not in everything
