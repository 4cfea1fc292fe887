"""The poller and a job's life, driven by an injected clock against the real simulator and store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import aiohttp
import pytest

from bot.alerts import OperatorAlerts
from bot.budget import Budgets
from bot.db import Database
from bot.errors import InvalidInput
from bot.grok import GenerateRequest, GrokClient, RetryPolicy
from bot.jobs import JobState, JobStore, NewJob
from bot.metrics import Metrics
from bot.models import Job
from bot.poller import QUEUED_STATUS_CHECKS, Poller, fair_pressures
from bot.ratelimit import RateLimiter
from bot.schedule import DurationModel, PollPlanner
from bot.service import (
    QUEUE_NOTICE_AFTER,
    QUEUE_REFRESH,
    Delivery,
    FailureReason,
    ImagineService,
    Progress,
    QueuePlace,
    Requester,
)
from bot.simulator import Fault, Simulator, SimulatorConfig
from tests.support.clock import FakeClock
from tests.support.jobs import new_job
from tests.support.poller import drain, job_steps

T = TypeVar("T")
GUILD = 1001
MEMBER = 2002


@dataclass
class RecordingNotifier:
    """Stands in for the Discord side, which the end-to-end tests cover for real."""

    delivered: list[str] = field(default_factory=list)
    failed: list[tuple[str, FailureReason, int]] = field(default_factory=list)
    progress: list[tuple[str, str]] = field(default_factory=list)
    queued: list[tuple[str, int]] = field(default_factory=list)
    broken_deliveries: int = 0
    # Deliveries of jobs whose prompt contains "slow" wait until this is set.
    slow_deliveries_may_finish: asyncio.Event = field(default_factory=asyncio.Event)

    async def job_progress(self, job: Job, progress: Progress) -> None:
        self.progress.append((job.id, progress.status))

    async def job_queued(self, job: Job, place: QueuePlace) -> None:
        self.queued.append((job.id, place.position))

    async def deliver(self, job: Job) -> Delivery:
        if "slow" in job.prompt:
            await self.slow_deliveries_may_finish.wait()
        if self.broken_deliveries > 0:
            self.broken_deliveries -= 1
            raise RuntimeError("Discord is down")
        self.delivered.append(job.id)
        return Delivery(message_id=len(self.delivered))

    async def job_failed(self, job: Job, reason: FailureReason, refunded: int) -> None:
        self.failed.append((job.id, reason, refunded))


@dataclass
class World:
    clock: FakeClock
    database: Database
    simulator: Simulator
    service: ImagineService
    poller: Poller
    notifier: RecordingNotifier
    budgets: Budgets
    jobs: JobStore

    async def new_job(self, prompt: str = "a cat", *, submit: bool = True) -> Job:
        new = NewJob(
            guild_id=GUILD,
            channel_id=3003,
            member_id=MEMBER,
            locale="en",
            prompt=prompt,
            mode="normal",
            ratio="16:9",
            image_urls=(),
            progress_message_id=None,
            interaction_token=None,
            interaction_expires_at=None,
            upload_limit_bytes=10_000_000,
            cost=40,
        )
        job = await self.service.start(new)
        if submit:
            job = (await self.drive(self.service.submit(job.id))).job
        return job

    async def drive(self, step: Awaitable[T]) -> T:
        """Await ``step``; whenever it waits on the clock (a backoff, the rate limit), move time."""
        task = asyncio.ensure_future(step)
        while not task.done():
            await asyncio.sleep(0.001)  # real loopback I/O
            if not task.done() and self.clock.sleepers:
                await self.clock.advance(0.05)
        return task.result()

    async def job(self, job_id: str) -> Job:
        async with self.database.transaction() as session:
            found = await self.jobs.get(session, job_id)
        assert found is not None
        return found

    async def remaining(self) -> int:
        async with self.database.transaction() as session:
            return (await self.budgets.view(session, GUILD)).remaining

    async def run_ticks(self, seconds: float, step: float = 1.0) -> None:
        """Advance time in steps, letting the poller do whatever is due after each."""
        elapsed = 0.0
        while elapsed < seconds:
            await self.clock.advance(step)
            elapsed += step
            while await self.drive(self.step()):
                pass

    async def step(self) -> int:
        """One poller pass, waiting for the steps it started."""
        claimed = await self.poller.tick()
        await drain()
        return claimed


async def take_every_slot(world: World) -> None:
    """The whole minute's rate budget is taken by others."""
    limiter = world.poller._limiter
    for _ in range(limiter.available()):
        await limiter.acquire()


def release_every_slot(world: World) -> None:
    limiter = world.poller._limiter
    for _ in range(limiter.in_flight):
        limiter.release()


def other_process(world: World, durations: DurationModel | None = None) -> ImagineService:
    """Another bot process (or the same bot after a restart) over the same database and key."""
    durations = durations or world.service.durations
    return ImagineService(
        database=world.database,
        budgets=world.budgets,
        jobs=world.jobs,
        client=world.service.client,
        clock=world.clock,
        durations=durations,
        planner=PollPlanner(durations),
        notifier=RecordingNotifier(),
        credits_per_video=40,
        job_timeout=timedelta(minutes=5),
        wakeup=asyncio.Event(),
        metrics=Metrics(),
        alerts=OperatorAlerts(None, clock=world.clock),
        requests_per_minute=100,
    )


@pytest.fixture
async def world(database: Database, clock: FakeClock) -> AsyncIterator[World]:
    simulator = Simulator(SimulatorConfig(min_seconds=20, max_seconds=40, seed=3), clock=clock)
    await simulator.start()
    async with aiohttp.ClientSession() as http:
        limiter = RateLimiter(100, clock=clock)
        client = GrokClient(
            http,
            base_url=simulator.url,
            token="key",
            limiter=limiter,
            clock=clock,
            retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01),
        )
        durations = DurationModel(30.0)
        budgets = Budgets(default_guild_credits=400, clock=clock)
        jobs = JobStore(clock=clock)
        notifier = RecordingNotifier()
        wakeup = asyncio.Event()
        metrics = Metrics()
        service = ImagineService(
            database=database,
            budgets=budgets,
            jobs=jobs,
            client=client,
            clock=clock,
            durations=durations,
            planner=PollPlanner(durations),
            notifier=notifier,
            credits_per_video=40,
            job_timeout=timedelta(minutes=5),
            wakeup=wakeup,
            metrics=metrics,
            alerts=OperatorAlerts(None, clock=clock),
            requests_per_minute=100,
        )
        poller = Poller(
            service=service,
            database=database,
            jobs=jobs,
            limiter=limiter,
            clock=clock,
            metrics=metrics,
            wakeup=wakeup,
        )
        yield World(clock, database, simulator, service, poller, notifier, budgets, jobs)
    await simulator.close()


async def test_a_job_is_polled_on_schedule_delivered_once_and_settled(world: World) -> None:
    job = await world.new_job()
    assert job.state == JobState.RUNNING
    assert await world.remaining() == 360

    await world.run_ticks(60)

    assert world.notifier.delivered == [job.id]
    finished = await world.job(job.id)
    assert finished.state == JobState.DELIVERED
    assert finished.consumed_credits == 40
    assert finished.interaction_token is None
    assert await world.remaining() == 360
    polls = world.simulator.count("GET", "/v1/status")
    assert polls == finished.poll_count
    # A learned schedule, not a fixed interval: a 20-40 s job needs only a handful of checks.
    assert 1 <= polls <= 8
    # Its first check told the model whether jobs are usually done by then.
    done_at_first, running_at_first = world.service.durations.first_poll_outcomes
    assert (done_at_first, running_at_first) == ((1, 0) if polls == 1 else (0, 1))


async def test_nothing_is_polled_before_it_is_due(world: World) -> None:
    await world.new_job()
    await world.clock.advance(1)
    assert await world.drive(world.step()) == 0
    assert world.simulator.count("GET", "/v1/status") == 0


async def test_a_tick_costs_the_due_jobs_not_all_jobs(world: World) -> None:
    async with world.database.transaction() as session:
        await world.budgets.set_budget(
            session,
            GUILD,
            credits=40 * 30,
            period=None,
            member_cap=None,
            actor_id=1,
            may_raise=True,
        )
    jobs = [await world.new_job(f"cat {n}") for n in range(30)]
    far = world.clock.now() + timedelta(hours=1)
    async with world.database.transaction() as session:
        for job in jobs[3:]:
            await world.jobs.update_fields(session, job.id, JobState.RUNNING, next_poll_at=far)
        for job in jobs[:3]:
            await world.jobs.update_fields(
                session, job.id, JobState.RUNNING, next_poll_at=world.clock.now()
            )
    assert await world.drive(world.step()) == 3
    assert world.simulator.count("GET", "/v1/status") == 3


async def test_a_failed_task_is_refunded_and_reported(world: World) -> None:
    job = await world.new_job("[fail:build] a castle")
    await world.run_ticks(60)
    ended = await world.job(job.id)
    assert ended.state == JobState.FAILED
    assert ended.error_text == "grok imagine build failed"
    assert world.notifier.failed == [(job.id, FailureReason.GENERATION_FAILED, 40)]
    assert await world.remaining() == 400


async def test_a_job_running_too_long_expires_and_is_refunded(world: World) -> None:
    job = await world.new_job()
    world.simulator.config.min_seconds = world.simulator.config.max_seconds = 10_000
    world.simulator.tasks[job.task_id].duration = 10_000  # type: ignore[index]
    await world.run_ticks(6 * 60, step=5)
    ended = await world.job(job.id)
    assert ended.state == JobState.EXPIRED
    assert world.notifier.failed == [(job.id, FailureReason.EXPIRED, 40)]
    assert await world.remaining() == 400


async def test_status_errors_are_retried_not_fatal(world: World) -> None:
    job = await world.new_job()
    world.simulator.inject(Fault.SERVER_ERROR, endpoint="status", times=6)
    await world.run_ticks(120)
    assert (await world.job(job.id)).state == JobState.DELIVERED


async def test_a_broken_delivery_is_retried_and_never_stops_the_loop(world: World) -> None:
    world.notifier.broken_deliveries = 2
    first = await world.new_job("one")
    second = await world.new_job("two")
    await world.run_ticks(60 * 10, step=5)
    assert sorted(world.notifier.delivered) == sorted([first.id, second.id])
    assert (await world.job(first.id)).delivery_attempts >= 2


async def test_a_delivery_that_keeps_failing_ends_refunded(world: World) -> None:
    world.notifier.broken_deliveries = 100
    job = await world.new_job()
    await world.run_ticks(60 * 60, step=30)
    ended = await world.job(job.id)
    assert ended.state == JobState.FAILED
    assert ended.error_code == FailureReason.DELIVERY_FAILED
    assert await world.remaining() == 400


async def test_a_job_created_but_never_submitted_is_submitted_after_a_crash(world: World) -> None:
    job = await world.new_job(submit=False)
    await world.run_ticks(90)
    assert world.simulator.count("POST", "/v1/generate") == 1
    assert (await world.job(job.id)).state in {JobState.RUNNING, JobState.DELIVERED}


async def test_a_submission_cut_off_by_a_crash_is_refunded_not_resent(world: World) -> None:
    job = await world.new_job(submit=False)
    async with world.database.transaction() as session:
        # The process died right after marking the job as being sent.
        await world.jobs.transition(
            session,
            job.id,
            JobState.CREATED,
            JobState.SUBMITTING,
            next_poll_at=world.clock.now() + timedelta(minutes=3),
        )
    await world.run_ticks(5 * 60, step=10)
    ended = await world.job(job.id)
    assert ended.state == JobState.FAILED
    assert ended.error_code == FailureReason.OUTCOME_UNKNOWN
    assert world.simulator.count("POST", "/v1/generate") == 0
    assert await world.remaining() == 400


async def test_an_ambiguous_submission_is_not_resent_and_is_refunded(world: World) -> None:
    world.simulator.inject(Fault.DROP_CONNECTION, endpoint="generate")
    job = await world.new_job()
    assert job.state == JobState.FAILED
    assert job.error_code == FailureReason.OUTCOME_UNKNOWN
    await world.run_ticks(60)
    assert world.simulator.count("POST", "/v1/generate") == 1
    assert await world.remaining() == 400


async def test_a_rejected_request_is_refunded(world: World) -> None:
    job = await world.new_job("x" * 5000)  # longer than the API accepts
    assert job.state == JobState.REJECTED
    assert world.notifier.failed == [(job.id, FailureReason.REJECTED, 40)]
    assert await world.remaining() == 400


async def test_learned_durations_survive_a_restart(world: World) -> None:
    for n in range(5):
        await world.new_job(f"cat {n}")
    await world.run_ticks(60)
    fresh = DurationModel(300.0)
    restarted = other_process(world, durations=fresh)
    await restarted.warm_up()
    assert fresh.observed == 5
    assert fresh.quantile(0.5) < DurationModel(300.0).quantile(0.5)


def test_fair_pressures_share_the_rate_max_min_fairly() -> None:
    # Plenty of capacity: nobody is stretched.
    assert fair_pressures({1: 0.2, 2: 0.3}, capacity=1.0) == {1: 1.0, 2: 1.0}
    # One heavy server cannot crowd out a light one: the light one keeps its full rate.
    pressures = fair_pressures({1: 0.1, 2: 3.0}, capacity=1.0)
    assert pressures[1] == 1.0
    assert pressures[2] == pytest.approx(3.0 / 0.9)
    # Equal demand, scarce capacity: stretched equally.
    even = fair_pressures({1: 2.0, 2: 2.0}, capacity=1.0)
    assert even[1] == even[2] == pytest.approx(4.0)
    assert fair_pressures({}, capacity=1.0) == {}


async def test_two_workers_submitting_one_job_send_one_request(world: World) -> None:
    other = other_process(world)
    job = await world.new_job(submit=False)
    outcomes = await world.drive(asyncio.gather(world.service.submit(job.id), other.submit(job.id)))
    assert world.simulator.count("POST", "/v1/generate") == 1
    assert {outcome.failure for outcome in outcomes} == {None}
    assert (await world.job(job.id)).state == JobState.RUNNING


async def test_the_poller_leaves_a_job_this_process_is_submitting_alone(world: World) -> None:
    await take_every_slot(world)
    job = await world.new_job(submit=False)
    waiting = asyncio.ensure_future(world.service.submit(job.id))
    await world.clock.settle()
    # Long past the grace after which an orphaned CREATED job is picked up by the poller
    # (this process renews it while it waits, but a renewal may come late).
    await world.clock.advance(90)
    async with world.database.transaction() as session:
        await world.jobs.update_fields(
            session, job.id, JobState.CREATED, next_poll_at=world.clock.now()
        )
    assert await world.drive(world.step()) == 1
    assert (await world.job(job.id)).state == JobState.CREATED
    release_every_slot(world)
    await world.drive(waiting)
    assert world.simulator.count("POST", "/v1/generate") == 1


async def test_a_job_waiting_for_a_rate_limit_slot_is_still_safe_to_send(world: World) -> None:
    await take_every_slot(world)
    job = await world.new_job(submit=False)
    waiting = asyncio.ensure_future(world.service.submit(job.id))
    await world.clock.settle()
    # Nothing has been sent, so after a crash now the job could be sent without doubt.
    assert (await world.job(job.id)).state == JobState.CREATED
    assert world.simulator.count("POST", "/v1/generate") == 0
    release_every_slot(world)
    await world.drive(waiting)
    assert (await world.job(job.id)).state == JobState.RUNNING
    assert world.simulator.count("POST", "/v1/generate") == 1


async def test_a_job_waiting_long_for_a_rate_limit_slot_is_not_taken_for_abandoned(
    world: World,
) -> None:
    await take_every_slot(world)
    job = await world.new_job(submit=False)
    waiting = asyncio.ensure_future(world.service.submit(job.id))
    await world.clock.settle()
    for _ in range(12):  # two minutes, twice SUBMIT_GRACE: renewed all along
        await world.clock.advance(10)
        await asyncio.sleep(0.05)  # the renewal's real database I/O
        assert (await world.job(job.id)).next_poll_at > world.clock.now()
    assert await world.drive(world.step()) == 0  # no other worker would take it either
    release_every_slot(world)
    await world.drive(waiting)
    assert (await world.job(job.id)).state == JobState.RUNNING
    assert world.simulator.count("POST", "/v1/generate") == 1


async def test_status_checks_beyond_the_rate_budget_stay_due_for_any_process(
    world: World,
) -> None:
    jobs = [await world.new_job(f"cat {index}") for index in range(5)]
    await world.clock.advance(60)  # every job is due, and done
    await take_every_slot(world)

    # A couple are claimed to wait for a slot; the rest stay due, unclaimed.
    assert await world.poller.tick() == QUEUED_STATUS_CHECKS
    await world.clock.settle()
    assert world.service.client.status_checks_waiting == QUEUED_STATUS_CHECKS
    assert await world.poller.tick() == 0
    unclaimed = [await world.job(job.id) for job in jobs]
    left_due = len(jobs) - QUEUED_STATUS_CHECKS
    assert sum(job.next_poll_at <= world.clock.now() for job in unclaimed) == left_due

    release_every_slot(world)
    await world.drive(drain())
    await world.run_ticks(5)
    assert sorted(world.notifier.delivered) == sorted(job.id for job in jobs)
    assert world.simulator.count("GET", "/v1/status") == 5


def requester(world: World) -> Requester:
    return Requester(
        guild_id=GUILD,
        channel_id=3003,
        member_id=MEMBER,
        locale="en",
        progress_message_id=None,
        interaction_token=None,
        interaction_expires_at=None,
        upload_limit_bytes=10_000_000,
    )


async def test_a_job_waiting_for_the_rate_budget_shows_its_place_and_can_be_cancelled(
    world: World,
) -> None:
    await take_every_slot(world)
    requests = {
        prompt: asyncio.ensure_future(
            world.service.request(requester(world), GenerateRequest(prompt=prompt))
        )
        for prompt in ("first", "second")
    }
    async with asyncio.timeout(10):
        # Both recorded (real database I/O) and waiting for a slot.
        while len(world.notifier.progress) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    await world.clock.advance(QUEUE_NOTICE_AFTER)
    async with asyncio.timeout(10):
        while len(world.notifier.queued) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    # One clock tick apart at most: the places follow the ids then, one each.
    assert sorted(position for _, position in world.notifier.queued) == [1, 2]
    places = {position: job_id for job_id, position in world.notifier.queued}
    ahead, behind = await world.job(places[1]), await world.job(places[2])
    place = await world.service.queue_place(behind)
    assert place is not None
    assert place.estimated_start > world.clock.now()

    async with asyncio.timeout(5):
        cancelled = await world.service.cancel(ahead.id, GUILD)

    assert cancelled.state == JobState.CANCELLED
    assert world.notifier.failed == [(ahead.id, FailureReason.CANCELLED, 40)]
    async with asyncio.timeout(5):
        # It stopped waiting for a slot at once.
        assert (await requests[ahead.prompt]).state == JobState.CANCELLED
    # The one behind it moves up, seen at the next look (not before: edits are paced).
    await world.clock.advance(QUEUE_REFRESH)
    async with asyncio.timeout(10):
        while world.notifier.queued[-1] != (behind.id, 1):  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    assert world.simulator.count("POST", "/v1/generate") == 0
    assert await world.remaining() == 400 - 40
    waiting = requests[behind.prompt]
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await waiting


async def test_a_job_already_sent_cannot_be_cancelled(world: World) -> None:
    job = await world.new_job()
    with pytest.raises(InvalidInput) as refused:
        await world.service.cancel(job.id, GUILD)
    assert refused.value.key == "imagine.cancel.too_late"
    with pytest.raises(InvalidInput) as elsewhere:
        await world.service.cancel(job.id, GUILD + 1)
    assert elsewhere.value.key == "imagine.cancel.unavailable"
    assert (await world.job(job.id)).state == JobState.RUNNING
    assert await world.remaining() == 360


async def test_a_cancel_racing_another_process_sending_the_job_has_one_winner(
    world: World,
) -> None:
    job = await world.new_job(submit=False)
    other = other_process(world)
    outcomes = await asyncio.gather(
        world.drive(other.submit(job.id)),
        world.service.cancel(job.id, GUILD),
        return_exceptions=True,
    )
    final = await world.job(job.id)
    posts = world.simulator.count("POST", "/v1/generate")
    if final.state == JobState.CANCELLED:
        assert posts == 0
        assert await world.remaining() == 400
    else:
        assert final.state == JobState.RUNNING
        assert isinstance(outcomes[1], InvalidInput)
        assert posts == 1
        assert await world.remaining() == 360


async def test_a_submission_ended_elsewhere_while_it_waits_to_retry_is_not_sent(
    world: World,
) -> None:
    world.simulator.inject(Fault.RATE_LIMITED, endpoint="generate")
    job = await world.new_job(submit=False)
    waiting = asyncio.ensure_future(world.service.submit(job.id))
    # The first attempt was answered 429; the retry now waits out the rate-limit window.
    async with asyncio.timeout(10):
        # No event to wait on: the request crosses real loopback HTTP.
        while world.simulator.count("POST", "/v1/generate") < 1 or not world.clock.sleepers:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    stale = await world.job(job.id)
    assert stale.state == JobState.SUBMITTING
    # Meanwhile another process gives the submission up as unknown and refunds it.
    await other_process(world).advance(stale)
    assert (await world.job(job.id)).state == JobState.FAILED

    outcome = await world.drive(waiting)
    assert outcome.job.state == JobState.FAILED
    assert world.simulator.count("POST", "/v1/generate") == 1  # the refused one, never again
    assert world.simulator.tasks == {}
    assert await world.remaining() == 400


async def test_a_job_overdue_only_because_the_bot_was_down_is_still_delivered(
    world: World,
) -> None:
    job = await world.new_job()
    await world.clock.advance(10 * 60)  # down for ten minutes; the timeout is five
    await world.run_ticks(5)
    assert world.notifier.delivered == [job.id]
    assert (await world.job(job.id)).state == JobState.DELIVERED


async def test_a_slow_delivery_does_not_hold_up_other_jobs(world: World) -> None:
    slow = await world.new_job("slow to post")
    quick = await world.new_job("quick to post")
    for _ in range(60):
        await world.clock.advance(1)
        await world.drive(world.poller.tick())
        # Let the steps just started run as far as they can.
        async with asyncio.timeout(10):
            while any(key != slow.id for key in job_steps()):  # noqa: ASYNC110
                await asyncio.sleep(0.001)
    assert world.notifier.delivered == [quick.id]
    assert slow.id in job_steps()
    world.notifier.slow_deliveries_may_finish.set()
    await world.drive(drain())
    assert world.notifier.delivered == [quick.id, slow.id]


async def test_a_job_never_sent_within_the_timeout_is_refunded(world: World) -> None:
    job = await world.new_job(submit=False)
    await world.clock.advance(6 * 60)  # its worker died and nobody came for six minutes
    await world.run_ticks(1)
    ended = await world.job(job.id)
    assert ended.state == JobState.FAILED
    assert ended.error_code == FailureReason.SERVICE_BUSY
    assert world.simulator.count("POST", "/v1/generate") == 0
    assert await world.remaining() == 400


async def test_a_delivery_longer_than_its_lease_keeps_it(world: World) -> None:
    slow = await world.new_job("slow to post")
    # Until the video is done and the (slow) post has begun.
    async with asyncio.timeout(30):
        while (await world.job(slow.id)).state != JobState.DELIVERING:
            await world.clock.advance(1)
            await world.drive(world.poller.tick())
    # Twice the lease passes while the post is still under way: the lease is renewed, so
    # another process never finds the job due for a second post.
    for _ in range(2 * 60):
        await world.clock.advance(10)
        await asyncio.sleep(0.001)
        async with world.database.transaction() as session:
            stolen = await world.jobs.claim_due(session, world.clock.now(), 10, lease_seconds=60)
        assert stolen == []
    assert (await world.job(slow.id)).delivery_attempts == 1
    world.notifier.slow_deliveries_may_finish.set()
    await world.drive(drain())
    assert world.notifier.delivered == [slow.id]


async def test_generation_times_are_shared_between_processes(world: World) -> None:
    other = other_process(world, durations=DurationModel(30.0))
    await other.warm_up()
    assert await other.learn_from_others() == 0
    job = await world.new_job()
    await world.run_ticks(60)
    assert (await world.job(job.id)).state == JobState.DELIVERED
    learned_here = world.service.durations.observed
    # The process that saw the job done learned it then; the other learns it from the store,
    # once; neither counts it twice.
    assert await other.learn_from_others() == 1
    assert other.durations.observed == 1
    assert await other.learn_from_others() == 0
    assert await world.service.learn_from_others() == 0
    assert world.service.durations.observed == learned_here


async def test_a_busy_server_does_not_slow_another_whichever_process_polls_it(
    world: World,
) -> None:
    quiet_guild = GUILD + 1
    # Two processes on one database, on a key so small that polling must be rationed.
    services = [world.service, other_process(world)]
    pollers = [
        Poller(
            service=service,
            database=world.database,
            jobs=world.jobs,
            limiter=RateLimiter(6, clock=world.clock),
            clock=world.clock,
            metrics=Metrics(),
        )
        for service in services
    ]
    busy = [await world.new_job(f"busy {n}") for n in range(9)]
    quiet_job = await world.service.start(new_job(guild_id=quiet_guild, prompt="the only one"))
    quiet = (await world.drive(world.service.submit(quiet_job.id))).job
    assert quiet.state == JobState.RUNNING

    # Every first status check falls due; each process takes what it can claim.
    await world.clock.advance(max(0.0, world.service.planner.first_poll()) + 1)
    for poller in pollers:
        await world.drive(poller.tick())
    await drain()
    steps = {job.id: await world.job(job.id) for job in [*busy, quiet]}
    assert all(job.poll_count == 1 for job in steps.values()), "a due job was left behind"

    def next_gap(job: Job) -> float:
        assert job.next_poll_at is not None
        assert job.last_polled_at is not None
        return (job.next_poll_at - job.last_polled_at).total_seconds()

    # The quiet server's job keeps a far shorter spacing than any of the busy server's.
    quiet_gap = next_gap(steps[quiet.id])
    busy_gaps = [next_gap(steps[job.id]) for job in busy if steps[job.id].state == "running"]
    assert busy_gaps
    assert quiet_gap < min(busy_gaps)
