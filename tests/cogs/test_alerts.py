"""What only the operator can fix reaches them by DM, through the whole bot; members keep their
friendly answer and their refund."""

from __future__ import annotations

from bot.jobs import JobState
from bot.simulator import Fault
from tests.cogs.conftest import WAIT, BotHarness, texts


async def test_a_refused_api_key_is_told_to_the_owner_once(harness: BotHarness) -> None:
    owner = harness.standin.add_user("operator")
    await harness.start(OWNER_IDS=str(owner.id))
    harness.simulator.config.token = "a-different-key"  # the API now refuses ours: 401
    for prompt in ("first cat", "second cat"):
        record = await harness.imagine(prompt=prompt)
        await harness.standin.wait_for(
            lambda r=record: r.original and "No video" in texts(r.original), limit=WAIT
        )
        assert "operator has been alerted" in texts(record.original)
    dm = await harness.standin.wait_for_direct_message(owner, limit=WAIT)
    assert "refused the API key (401)" in dm.content
    assert len(harness.standin.direct_messages(owner)) == 1  # once an hour per kind
    assert [job.state for job in await harness.jobs()] == [JobState.FAILED, JobState.FAILED]
    assert (await harness.services.budgets.view(harness.guild.id)).remaining == 400


async def test_an_unknown_submission_outcome_names_the_idempotency_key(
    harness: BotHarness,
) -> None:
    owner = harness.standin.add_user("operator")
    await harness.start(OWNER_IDS=str(owner.id))
    harness.simulator.inject(Fault.SERVER_ERROR_AFTER_ACCEPT, endpoint="generate")
    await harness.imagine(prompt="did it start?")
    job = await harness.wait_for_state(JobState.FAILED)
    dm = await harness.standin.wait_for_direct_message(owner, limit=WAIT)
    assert job.idempotency_key in dm.content
    assert job.id in dm.content
