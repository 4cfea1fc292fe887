"""Waiting for the poller's work, for tests and benchmarks.

``Poller.tick`` starts one task per claimed job and returns; these helpers find those tasks by
the name the poller gives them (``imagine-job-<job id>``), so the poller needs no test hooks.
One poller per event loop, as in the bot.
"""

from __future__ import annotations

import asyncio

STEP_PREFIX = "imagine-job-"


def job_steps() -> dict[str, asyncio.Task[object]]:
    """The poller's unfinished job steps in the running loop, by job id."""
    return {
        task.get_name().removeprefix(STEP_PREFIX): task
        for task in asyncio.all_tasks()
        if task.get_name().startswith(STEP_PREFIX) and not task.done()
    }


async def drain() -> None:
    """Wait until every job step started so far has finished (its errors are the poller's)."""
    while steps := job_steps():
        await asyncio.gather(*steps.values(), return_exceptions=True)
