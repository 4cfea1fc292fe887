"""The background loop: due jobs → one step each → sleep until the next job is due.

One poller per process. Each tick costs what the due jobs cost, not what all jobs cost: due jobs
come from an index on (state, next_poll_at), and the loop sleeps until the earliest one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from datetime import timedelta

from bot.api_contract import RATE_HEADROOM
from bot.clock import Clock
from bot.db import Database
from bot.jobs import ACTIVE_STATES, JobState, JobStore
from bot.logs import job_fields
from bot.metrics import Metrics
from bot.models import Job
from bot.ratelimit import RateLimiter
from bot.service import ImagineService

log = logging.getLogger(__name__)

MAX_PRESSURE = 1000.0
# Status checks a process keeps waiting for the rate budget when it has none to spare: enough
# that they take turns with submissions, few enough that each is sent well within its lease.
QUEUED_STATUS_CHECKS = 2
_WITHOUT_STATUS_CHECK = tuple(state for state in ACTIVE_STATES if state != JobState.RUNNING)


def fair_pressures(demand: Mapping[int, float], capacity: float) -> dict[int, float]:
    """Share a request rate across servers max-min fairly; return each server's stretch factor.

    A server asking for less than its fair share gets all it asks (pressure 1); the rest is split
    evenly among the others, whose polling is stretched by demand / share.
    """
    pressures: dict[int, float] = {}
    remaining = max(capacity, 0.0)
    ordered = sorted(demand.items(), key=lambda item: item[1])
    for position, (guild_id, wanted) in enumerate(ordered):
        share = remaining / (len(ordered) - position)
        granted = min(wanted, share)
        remaining -= granted
        if wanted <= 0:
            pressures[guild_id] = 1.0
        elif granted <= 0:
            pressures[guild_id] = MAX_PRESSURE
        else:
            pressures[guild_id] = min(MAX_PRESSURE, max(1.0, wanted / granted))
    return pressures


class Poller:
    """Advances due jobs within the shared rate budget, until stopped."""

    def __init__(
        self,
        *,
        service: ImagineService,
        database: Database,
        jobs: JobStore,
        limiter: RateLimiter,
        clock: Clock,
        metrics: Metrics,
        wakeup: asyncio.Event | None = None,
        batch_size: int = 50,
        idle_interval: float = 5.0,
        lease: timedelta = timedelta(seconds=60),
        pressure_refresh: float = 10.0,
        learn_interval: float = 60.0,
        headroom: float = RATE_HEADROOM,
    ) -> None:
        self._service = service
        self._database = database
        self._jobs = jobs
        self._limiter = limiter
        self._clock = clock
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle_interval = idle_interval
        self._lease = lease
        self._pressure_refresh = pressure_refresh
        self._learn_interval = learn_interval
        self._learned_at = -math.inf
        self._headroom = headroom
        # Set by whoever adds work (a job just submitted): look again now, not at the plan.
        self._wake = wakeup or asyncio.Event()
        self._stopping = False
        self._pressures: dict[int, float] = {}
        self._pressures_at = -math.inf
        # Due status checks were left unclaimed for want of rate budget: the next look comes
        # when a step ends (it wakes the loop), not at the due time, which has passed.
        self._held_back = False
        self._task: asyncio.Task[None] | None = None
        # Each due job is stepped in a task of its own, so one slow delivery or a status check
        # queued for the rate limit never holds up the others.
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="imagine-poller")

    async def stop(self) -> None:
        """Stop the loop and abandon unfinished steps: their leases let a later run redo them."""
        self._stopping = True
        self._wake.set()
        tasks = [*self._in_flight.values(), *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._in_flight.clear()

    def wake(self) -> None:
        """Something changed (a new job): look again now instead of at the planned time."""
        self._wake.set()

    async def run(self) -> None:
        log.info("poller started")
        while not self._stopping:
            # Cleared before the tick, so a wake-up that arrives during it is not lost.
            self._wake.clear()
            try:
                started = self._clock.monotonic()
                await self.tick()
                self._metrics.tick_finished(self._clock.monotonic() - started)
                if started - self._learned_at >= self._learn_interval:
                    # Generation times other processes saw: every process plans with all.
                    self._learned_at = started
                    await self._service.learn_from_others()
                if len(self._in_flight) >= self._batch_size or self._held_back:
                    # Every step slot is taken, or the rate budget is: looking again before
                    # a step finishes (which wakes the loop) would only spin on the database.
                    delay = self._idle_interval
                else:
                    delay = await self.seconds_until_due()
            except Exception:
                # A broken tick (database hiccup…) must never end the loop.
                log.exception("poller tick failed")
                delay = self._idle_interval
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (sleeper, waker):
                pending.cancel()

    # --- one pass ---------------------------------------------------------------------------

    async def tick(self) -> int:
        """Claim the jobs that are due (as many as the rate budget allows); start a step each.

        Returns how many were claimed; their steps run on after it returns.

        Status checks are claimed only as far as the rate budget allows them now, plus a few
        kept waiting (``QUEUED_STATUS_CHECKS``) to take turns with submissions. The rest stay
        due in the database, where whichever process has budget first claims the most overdue.
        A job claimed long before its request can be sent would outlive its lease and be
        claimed, and checked, a second time by another process; and this process's limiter
        alone cannot tell: the budget is shared with the others (``GrokClient.available``).
        """
        room = self._batch_size - len(self._in_flight)
        self._held_back = False
        if room <= 0:
            return 0
        now = self._clock.now()
        client = self._service.client
        checks = max(client.available(), QUEUED_STATUS_CHECKS) - client.status_checks_waiting
        lease_seconds = self._lease.total_seconds()
        async with self._database.transaction() as session:
            # Jobs that need no status check: deliveries, and submissions to give up or redo.
            due = await self._jobs.claim_due(
                session,
                now,
                min(room, max(1, self._limiter.available())),
                lease_seconds=lease_seconds,
                states=_WITHOUT_STATUS_CHECK,
            )
            room -= len(due)
            if room > 0 and checks > 0:
                due += await self._jobs.claim_due(
                    session,
                    now,
                    min(room, checks),
                    lease_seconds=lease_seconds,
                    states=(JobState.RUNNING,),
                )
            else:
                # Status checks of this process are already waiting (their steps wake the
                # loop when they end): any due ones wait for that.
                self._held_back = room > 0
        if not due:
            return 0
        await self._refresh_pressures()
        for job in due:
            if job.id not in self._in_flight:  # its lease ran out while its step still runs
                self._in_flight[job.id] = asyncio.create_task(
                    self._advance(job), name=f"imagine-job-{job.id}"
                )
        return len(due)

    async def _advance(self, job: Job) -> None:
        try:
            await self._service.advance(job, pressure=self._pressures.get(job.guild_id, 1.0))
        except Exception:
            log.exception(
                "job %s could not be advanced; it is retried after its lease",
                job.id,
                extra=job_fields(job),
            )
        finally:
            self._in_flight.pop(job.id, None)
            self.wake()  # its next due time has changed: plan the next sleep again

    async def seconds_until_due(self) -> float:
        async with self._database.transaction() as session:
            next_due = await self._jobs.next_due_at(session, ACTIVE_STATES)
        if next_due is None:
            return self._idle_interval
        wait = (next_due - self._clock.now()).total_seconds()
        return min(max(wait, 0.0), self._idle_interval)

    async def _refresh_pressures(self) -> None:
        """Recompute each server's polling stretch from how many jobs it has running."""
        now = self._clock.monotonic()
        if now - self._pressures_at < self._pressure_refresh:
            return
        self._pressures_at = now
        async with self._database.transaction() as session:
            running = await self._jobs.running_by_guild(session)
        planner = self._service.planner
        mean_duration = max(self._service.durations.expected_remaining(0.0), 1.0)
        per_job_rate = planner.expected_requests() / mean_duration
        capacity = self._limiter.per_second() * (1.0 - self._headroom)
        demand = {guild_id: count * per_job_rate for guild_id, count in running.items()}
        self._pressures = fair_pressures(demand, capacity)
        stretched = {g: round(p, 2) for g, p in self._pressures.items() if p > 1.0}
        if stretched:
            log.info("rate budget is tight; stretching polls per server: %s", stretched)
