"""Many jobs polled at once on the planner's schedule, without the bot: the planner alone.

Jobs are submitted ``spacing`` apart and each is polled when the planner says, learning only
what the bot learns: a job done at a poll is observed then, and a first poll that finds a job
running is reported as such. An end-to-end run of the bot on the same durations polls at the
same moments give or take a few milliseconds (``jitter``), and lands near the same figures:
the schedule reacts to every finished job, so a run is sensitive to those milliseconds.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass

from bot.schedule import DurationModel, PollPlanner


@dataclass(frozen=True)
class ReplayedJob:
    duration: float
    first_poll: float  # s after submission
    requests: int  # status requests, the one that found it done included
    lateness: float  # that request's moment - the job's completion (s)


def replay_jobs(
    prior: float,
    durations: Sequence[float],
    *,
    spacing: float = 1.0,
    jitter: float = 0.0,
    seed: int = 0,
    learned_from: Sequence[float] = (),
) -> list[ReplayedJob]:
    """Poll jobs of ``durations`` with a new bot's planner (``prior`` only), all at once.

    With ``learned_from`` the bot first runs jobs of those durations the same way, to the end
    (a warm bot), and only then the measured ones.
    """
    model = DurationModel(prior)
    planner = PollPlanner(model)
    if learned_from:
        _poll_all(
            model,
            planner,
            learned_from,
            spacing=spacing,
            jitter=jitter,
            late_by=random.Random(seed + 1),
        )
    return _poll_all(
        model, planner, durations, spacing=spacing, jitter=jitter, late_by=random.Random(seed)
    )


def _poll_all(
    model: DurationModel,
    planner: PollPlanner,
    durations: Sequence[float],
    *,
    spacing: float,
    jitter: float,
    late_by: random.Random,
) -> list[ReplayedJob]:
    first_polls: dict[int, float] = {}
    requests = [0] * len(durations)
    lateness = [0.0] * len(durations)
    # (moment, job, seconds after submission of its previous poll; None: not submitted yet)
    events: list[tuple[float, int, float | None]] = [
        (index * spacing, index, None) for index in range(len(durations))
    ]
    heapq.heapify(events)
    while events:
        now, job, previous = heapq.heappop(events)
        submitted = job * spacing
        if previous is None:
            first_polls[job] = planner.first_poll()
            due = submitted + first_polls[job]
            heapq.heappush(events, (due + late_by.uniform(0, jitter), job, 0.0))
            continue
        elapsed = now - submitted
        requests[job] += 1
        if elapsed >= durations[job]:
            lateness[job] = elapsed - durations[job]
            model.observe(previous, elapsed)
            continue
        if previous == 0.0:
            model.observe_running_at_first_poll(elapsed)
        due = submitted + planner.next_poll(elapsed)
        heapq.heappush(events, (due + late_by.uniform(0, jitter), job, elapsed))
    return [
        ReplayedJob(duration, first_polls[index], requests[index], lateness[index])
        for index, duration in enumerate(durations)
    ]
