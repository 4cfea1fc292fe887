"""A job's life, from reserved credits to a delivered video or a refund.

Every step is a conditional state transition in the store, taken in the same transaction as the
money it moves, so no step can happen twice: not after a crash, not with two workers.
The Discord side is reached only through the ``JobNotifier`` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.alerts import AlertKind, OperatorAlerts, looks_out_of_credits
from bot.budget import Budgets
from bot.clock import Clock
from bot.db import Database
from bot.errors import InvalidInput
from bot.grok import (
    GenerateRequest,
    GrokClient,
    GrokError,
    InvalidRequestError,
    SubmissionDeclined,
    SubmissionOutcomeUnknown,
    TaskPhase,
    TaskStatus,
    UnauthorizedError,
)
from bot.jobs import JobState, JobStore, NewJob
from bot.logs import job_fields
from bot.metrics import Metrics
from bot.models import Job
from bot.schedule import DurationModel, PollSchedule

log = logging.getLogger(__name__)

# ``next_poll_at`` is when a job needs attention next; per state that means:
#   created     the submitting worker is presumed dead after SUBMIT_GRACE: submit it again
#   submitting  no answer recorded within SUBMIT_OUTCOME_DEADLINE of the last send: unknown
#   running     the next status check, from the learned schedule
#   delivering  the delivering worker is presumed dead after DELIVERY_LEASE: deliver again
SUBMIT_GRACE = timedelta(seconds=60)
# Renewed before every send attempt, so it only has to outlast one request and its timeouts.
SUBMIT_OUTCOME_DEADLINE = timedelta(minutes=3)
# Longer than a worst-case download (VideoFetcher's 300 s) plus the upload.
DELIVERY_LEASE = timedelta(minutes=10)
# A failed delivery (Discord down, missing permission) is tried again after 30 s, 1, 2, 4 min.
DELIVERY_RETRY = timedelta(seconds=30)
MAX_DELIVERY_ATTEMPTS = 5
# Status checks that fail for reasons of our own side or the network are retried this soon.
STATUS_RETRY_DELAY = timedelta(seconds=15)
# Jobs whose duration this process learned itself, remembered so it never counts them twice.
LEARNED_HERE_MEMORY = 10_000
# A submission still waiting for a rate-limit slot after this long shows the member their
# place in the queue; the place is then looked at again at this pace at most, and shown only
# when it has moved (the estimated start is a Discord timestamp that counts down by itself).
QUEUE_NOTICE_AFTER = 2.0
QUEUE_REFRESH = 15.0
# All queue updates of one process together stay under one edit a second: far inside
# Discord's limits for a channel (5 edits in 5 s) and for the whole bot (50 requests a second).
QUEUE_EDITS_PER_SECOND = 1.0


class FailureReason(StrEnum):
    """Why a job ended without a video; each has its own message to the member."""

    REJECTED = "rejected"  # the API refused the request (400): its message is kept
    GENERATION_FAILED = "generation_failed"  # the task failed: error_text is the API's text
    OUTCOME_UNKNOWN = "outcome_unknown"  # the submission's answer was lost
    SERVICE_BUSY = "service_busy"  # rate limited or unreachable before the request was sent
    SERVICE_UNAVAILABLE = "service_unavailable"  # the API key was refused, or similar
    EXPIRED = "expired"  # ran longer than the maximum wait
    DELIVERY_FAILED = "delivery_failed"  # the video could not be posted
    CANCELLED = "cancelled"  # withdrawn before it was sent: nothing was spent


@dataclass(frozen=True, slots=True)
class Progress:
    """What a waiting member is shown."""

    submitted_at: datetime | None
    estimated_ready_at: datetime | None
    status: str  # the API's raw status, or "submitting"


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """Where a job waiting for the API's rate budget stands."""

    position: int  # 1: the next job to be sent, across every server
    estimated_start: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a video was posted."""

    message_id: int | None


class JobNotifier(Protocol):
    """The Discord side of a job: implemented in ``cogs``."""

    async def job_progress(self, job: Job, progress: Progress) -> None: ...

    async def job_queued(self, job: Job, place: QueuePlace) -> None:
        """The job waits for the rate budget: show its place, and a way to cancel it."""
        ...

    async def deliver(self, job: Job) -> Delivery:
        """Post the finished video(s). Raises to have the delivery retried later."""
        ...

    async def job_failed(self, job: Job, reason: FailureReason, refunded: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked for a video, and where the answer goes."""

    guild_id: int
    channel_id: int
    member_id: int
    locale: str
    progress_message_id: int | None  # the public message that shows the job's progress
    interaction_token: str | None  # answers through the interaction while it lives
    interaction_expires_at: datetime | None
    upload_limit_bytes: int


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    job: Job
    failure: FailureReason | None = None


class ImagineService:
    """Starts, advances and finishes jobs. Used by the /imagine command and by the poller."""

    def __init__(
        self,
        *,
        database: Database,
        budgets: Budgets,
        jobs: JobStore,
        client: GrokClient,
        clock: Clock,
        durations: DurationModel,
        planner: PollSchedule,
        notifier: JobNotifier,
        credits_per_video: int,
        job_timeout: timedelta,
        wakeup: asyncio.Event,
        metrics: Metrics,
        alerts: OperatorAlerts,
        requests_per_minute: int,
        after_spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.database = database
        self.budgets = budgets
        self.jobs = jobs
        self.client = client
        self.clock = clock
        self.durations = durations
        self.planner = planner
        self.notifier = notifier
        self.credits_per_video = credits_per_video
        self.job_timeout = job_timeout
        self._wakeup = wakeup
        self.metrics = metrics
        self.alerts = alerts
        # Generation times are shared through the database: what this process learned itself
        # (not to count twice), and how far it has read what the others learned.
        self._learned_here: OrderedDict[str, None] = OrderedDict()
        self._learned_until: datetime | None = None
        # Jobs this process is submitting right now (possibly still waiting for a rate-limit
        # slot): the poller leaves them alone instead of queueing a second attempt.
        self._submitting: set[str] = set()
        # Their sends, so that a job cancelled while it waits stops waiting at once.
        self._sends: dict[str, asyncio.Future[str]] = {}
        self._requests_per_minute = requests_per_minute
        # Told the guild after each reservation (budget alerts), beside the request.
        self._after_spend = after_spend
        self._background: set[asyncio.Task[None]] = set()

    async def warm_up(self) -> None:
        """Learn generation times from jobs delivered before this process started."""
        async with self.database.transaction() as session:
            durations = await self.jobs.recent_durations(session)
            self._learned_until = await self.jobs.latest_completion(session)
        self.durations.observe_estimates(reversed(durations))

    async def learn_from_others(self) -> int:
        """Learn the generation times other processes saw since the last look; how many."""
        async with self.database.transaction() as session:
            done = await self.jobs.durations_completed_after(session, self._learned_until)
        if not done:
            return 0
        self._learned_until = done[-1][2]
        theirs = [duration for job_id, duration, _ in done if job_id not in self._learned_here]
        self.durations.observe_estimates(theirs)
        return len(theirs)

    # --- what members ask for ---------------------------------------------------------------

    async def request(
        self, requester: Requester, request: GenerateRequest, *, reroll_of: str | None = None
    ) -> Job:
        """/imagine: reserve the credits, record the job, send it, show how it goes.

        Raises ``BudgetRefused`` (nothing recorded) when the budget can't pay for it. Once the
        job is recorded nothing is raised: whatever goes wrong, the poller takes it over.
        """
        job = await self.start(
            NewJob(
                guild_id=requester.guild_id,
                channel_id=requester.channel_id,
                member_id=requester.member_id,
                locale=requester.locale,
                prompt=request.prompt,
                mode=request.mode,
                ratio=request.ratio,
                image_urls=request.images,
                progress_message_id=requester.progress_message_id,
                interaction_token=requester.interaction_token,
                interaction_expires_at=requester.interaction_expires_at,
                upload_limit_bytes=requester.upload_limit_bytes,
                cost=self.credits_per_video,
                reroll_of=reroll_of,
            )
        )
        if self._after_spend is not None:
            announcing = asyncio.create_task(self._after_spend(job.guild_id))
            self._background.add(announcing)
            announcing.add_done_callback(self._background.discard)
        sending = asyncio.create_task(self.submit(job.id), name=f"imagine-submit-{job.id}")
        # Progress is shown beside the submission and never holds it up.
        shown = asyncio.create_task(self._show_until_sent(job, sending))
        try:
            outcome = await sending
        except Exception:
            log.exception(
                "job %s hit a problem after it was saved; the poller takes over",
                job.id,
                extra=job_fields(job),
            )
            return job
        finally:
            if not sending.done():  # this request itself was cancelled (shutting down)
                sending.cancel()
                shown.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shown
        if outcome.job.state == JobState.RUNNING:
            self._wakeup.set()  # its first status check is due before the poller's plan
            await self._notify_progress(outcome.job, "submitted")
        return outcome.job

    async def reroll(self, requester: Requester, job_id: str) -> Job:
        """The same request as ``job_id`` again, charged to ``requester``."""
        request = await self.request_of(job_id, requester.guild_id)
        return await self.request(requester, request, reroll_of=job_id)

    async def request_of(self, job_id: str, guild_id: int) -> GenerateRequest:
        """What ``job_id`` asked for (to make again, or to edit into a new request)."""
        async with self.database.transaction() as session:
            original = await self.jobs.get(session, job_id)
        if original is None or original.guild_id != guild_id:
            raise InvalidInput("imagine.reroll.unavailable")
        return GenerateRequest(
            prompt=original.prompt,
            mode=original.mode,
            ratio=original.ratio,
            images=tuple(original.image_urls),
        )

    async def cancel(self, job_id: str, guild_id: int) -> Job:
        """Withdraw a job that has not been sent to the API yet, with a full refund.

        Raises ``InvalidInput`` when it is too late (the request has left: the API cannot
        cancel, and the video is paid for) or the job is not this server's.
        """
        async with self.database.transaction() as session:
            job = await self.jobs.get(session, job_id)
        if job is None or job.guild_id != guild_id:
            raise InvalidInput("imagine.cancel.unavailable")
        # The same conditional step as the send's own claim: exactly one of them wins.
        ended = await self._finish_unsuccessfully(
            job, JobState.CREATED, JobState.CANCELLED, FailureReason.CANCELLED, "cancelled"
        )
        if ended is None:
            raise InvalidInput("imagine.cancel.too_late")
        send = self._sends.get(job_id)
        if send is not None:
            send.cancel()  # stop waiting for a rate-limit slot it no longer needs
        return ended

    async def queue_place(self, job: Job) -> QueuePlace | None:
        """Where ``job`` stands among the jobs waiting to be sent; None once it has left."""
        async with self.database.transaction() as session:
            current = await self.jobs.get(session, job.id)
            if current is None or current.state != JobState.CREATED:
                return None
            position = 1 + await self.jobs.waiting_ahead_of(session, current)
        # Every job needs one submission and its status checks, so a saturated key starts
        # requests_per_minute / (1 + checks per job) jobs a minute.
        per_minute = self._requests_per_minute / (1.0 + self.planner.expected_requests())
        start = self.clock.now() + timedelta(minutes=(position - 1) / per_minute)
        return QueuePlace(position=position, estimated_start=start)

    async def requester_of(self, job_id: str) -> int | None:
        """Who asked for ``job_id`` (None for a job this bot does not know)."""
        async with self.database.transaction() as session:
            job = await self.jobs.get(session, job_id)
        return job.member_id if job is not None else None

    # --- starting a job -------------------------------------------------------------------

    async def start(self, new: NewJob) -> Job:
        """Record a job and reserve its credits in one transaction (``BudgetRefused`` if not)."""
        now = self.clock.now()
        async with self.database.transaction() as session:
            job = await self.jobs.create(session, new, next_poll_at=now + SUBMIT_GRACE)
            await self.budgets.reserve(
                session,
                guild_id=new.guild_id,
                member_id=new.member_id,
                cost=new.cost,
                job_id=job.id,
            )
        self.metrics.job_started(new.guild_id, new.cost)
        return job

    async def submit(self, job_id: str) -> SubmitOutcome:
        """Send a CREATED job to the API exactly once and record the outcome.

        The job becomes SUBMITTING only at the last moment, with a rate-limit slot in hand and
        the request about to leave: until then a crash leaves it CREATED, safe to send later.
        """
        async with self.database.transaction() as session:
            job = await self.jobs.get(session, job_id)
        assert job is not None
        if job.state != JobState.CREATED or job_id in self._submitting:
            return SubmitOutcome(job)
        self._submitting.add(job_id)
        renewing = asyncio.create_task(self._renew_submit_grace(job_id))
        try:
            return await self._submit_created(job)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            self._submitting.discard(job_id)
            self._sends.pop(job_id, None)

    async def _renew_submit_grace(self, job_id: str) -> None:
        """Keep a job this process is sending from looking abandoned while it waits.

        A submission may wait for the rate budget far longer than SUBMIT_GRACE. Without this,
        another process would take the job for a dead worker's and queue a second send of it,
        which, though never sent twice, spends a rate-limit token on nothing.
        """
        while True:
            await self.clock.sleep(SUBMIT_GRACE.total_seconds() / 3)
            async with self.database.transaction() as session:
                still_waiting = await self.jobs.update_fields(
                    session, job_id, JobState.CREATED, next_poll_at=self.clock.now() + SUBMIT_GRACE
                )
            if not still_waiting:
                return  # sent (its own deadline rules now), or ended

    async def _submit_created(self, job: Job) -> SubmitOutcome:
        """Submit a job read as CREATED; a worker elsewhere may be racing for it."""
        job_id = job.id
        claimed = False

        async def mark_submitting() -> bool:
            # Runs before every send attempt (a 429 retry may come much later): each time the
            # job must still be ours, and its outcome deadline starts again from now.
            nonlocal claimed
            deadline = self.clock.now() + SUBMIT_OUTCOME_DEADLINE
            async with self.database.transaction() as session:
                if claimed:
                    return await self.jobs.update_fields(
                        session, job_id, JobState.SUBMITTING, next_poll_at=deadline
                    )
                claimed = await self.jobs.transition(
                    session, job_id, JobState.CREATED, JobState.SUBMITTING, next_poll_at=deadline
                )
            return claimed

        request = GenerateRequest(
            prompt=job.prompt, mode=job.mode, ratio=job.ratio, images=tuple(job.image_urls)
        )
        send = asyncio.ensure_future(
            self.client.submit(
                request, idempotency_key=job.idempotency_key, before_send=mark_submitting
            )
        )
        self._sends[job_id] = send
        try:
            task_id = await send
        except asyncio.CancelledError:
            current_task = asyncio.current_task()
            if current_task is not None and current_task.cancelling():
                send.cancel()
                raise  # this worker itself is being cancelled
            # Only the send was cancelled: the job was withdrawn while it waited.
            async with self.database.transaction() as session:
                current = await self.jobs.get(session, job_id)
            return SubmitOutcome(current or job)
        except SubmissionDeclined:
            # Another worker took the job, or ended it, while this one waited to send.
            async with self.database.transaction() as session:
                current = await self.jobs.get(session, job_id)
            return SubmitOutcome(current or job)
        except GrokError as error:
            from_state = JobState.SUBMITTING if claimed else JobState.CREATED
            to_state, reason, text = self._submission_failure(job, error)
            await self._tell_operator(job, error)
            ended = await self._finish_unsuccessfully(job, from_state, to_state, reason, text)
            return SubmitOutcome(ended or job, failure=reason)
        submitted = self.clock.now()
        async with self.database.transaction() as session:
            running = await self.jobs.transition(
                session,
                job.id,
                JobState.SUBMITTING,
                JobState.RUNNING,
                task_id=task_id,
                submitted_at=submitted,
                next_poll_at=submitted + timedelta(seconds=self.planner.first_poll()),
            )
            job = await self.jobs.get(session, job.id)
        assert job is not None
        if not running:
            # Only possible if another worker ended the job while our request was out.
            log.error(
                "job %s got task %s after it had ended as %s (refunded): the task is billed "
                "and will not be delivered; reconcile with idempotency key %s",
                job.id,
                task_id,
                job.state,
                job.idempotency_key,
                extra=job_fields(job),
            )
            return SubmitOutcome(job)
        log.info("job %s submitted as task %s", job.id, task_id, extra=job_fields(job))
        return SubmitOutcome(job)

    async def _tell_operator(self, job: Job, error: GrokError) -> None:
        """Alert the operator to what only they can fix; members get their usual answer."""
        if isinstance(error, UnauthorizedError):
            await self.alerts.alert(AlertKind.KEY_REFUSED, str(error))
        elif isinstance(error, InvalidRequestError) and looks_out_of_credits(error.message):
            await self.alerts.alert(AlertKind.OUT_OF_CREDITS, error.message)
        elif isinstance(error, SubmissionOutcomeUnknown):
            await self.alerts.alert(
                AlertKind.OUTCOME_UNKNOWN,
                f"job {job.id}, idempotency key {job.idempotency_key}: {error.cause!r}",
            )

    @staticmethod
    def _submission_failure(job: Job, error: GrokError) -> tuple[JobState, FailureReason, str]:
        """How a submission that raised ends: the state, the reason, the text kept."""
        if isinstance(error, InvalidRequestError) and looks_out_of_credits(error.message):
            # The operator's account, not the member's request: the member is told the
            # service is unavailable, the operator is alerted.
            return JobState.REJECTED, FailureReason.SERVICE_UNAVAILABLE, error.message
        if isinstance(error, InvalidRequestError):
            return JobState.REJECTED, FailureReason.REJECTED, error.message
        if isinstance(error, SubmissionOutcomeUnknown):
            log.error(
                "submission of job %s has an unknown outcome (idempotency key %s): %r; "
                "refunding the server, check the API account for a stray task",
                job.id,
                job.idempotency_key,
                error.cause,
                extra=job_fields(job),
            )
            return JobState.FAILED, FailureReason.OUTCOME_UNKNOWN, str(error)
        if isinstance(error, UnauthorizedError):
            log.critical(
                "the GrokImagine API refused our token: check GROK_API_TOKEN", extra=job_fields(job)
            )
            return JobState.FAILED, FailureReason.SERVICE_UNAVAILABLE, str(error)
        # Anything else was raised before a request left us: nothing was made.
        return JobState.FAILED, FailureReason.SERVICE_BUSY, str(error)

    # --- the poller's steps -----------------------------------------------------------------

    async def advance(self, job: Job, pressure: float = 1.0) -> None:
        """Take the next step of a job the poller found due."""
        state = JobState(job.state)
        if job.id in self._submitting:
            return  # this process is still sending it (perhaps waiting for a rate-limit slot)
        if state is JobState.CREATED:
            if self.clock.now() - job.created_at > self.job_timeout:
                # Never sent (its worker died, or the API stayed out of reach): give it up.
                await self._finish_unsuccessfully(
                    job,
                    JobState.CREATED,
                    JobState.FAILED,
                    FailureReason.SERVICE_BUSY,
                    "never sent within the job timeout",
                )
                return
            outcome = await self.submit(job.id)
            if outcome.job.state == JobState.RUNNING:
                await self._notify_progress(outcome.job, "submitted")
        elif state is JobState.SUBMITTING:
            await self._finish_unsuccessfully(
                job,
                JobState.SUBMITTING,
                JobState.FAILED,
                FailureReason.OUTCOME_UNKNOWN,
                "no answer to the submission was recorded",
            )
        elif state is JobState.RUNNING:
            await self._check_running(job, pressure)
        elif state is JobState.DELIVERING:
            await self.deliver(job)

    async def _check_running(self, job: Job, pressure: float) -> None:
        now = self.clock.now()
        submitted_at = job.submitted_at or job.created_at
        # Expiry is decided after asking: a job overdue only because the bot was down may
        # well be finished, and its video is paid for.
        overdue = now - submitted_at > self.job_timeout
        assert job.task_id is not None
        try:
            try:
                status = await self.client.status(job.task_id)
            finally:
                # This check no longer waits for the rate budget: the poller may queue the next
                # due one now (it holds them back while enough wait), not after this delivery.
                self._wakeup.set()
        except InvalidRequestError as error:
            # The API no longer knows the task: nothing will ever come of it.
            await self._finish_unsuccessfully(
                job,
                JobState.RUNNING,
                JobState.FAILED,
                FailureReason.GENERATION_FAILED,
                error.message,
            )
            return
        except GrokError as error:
            log.warning(
                "status of job %s (task %s) failed: %s",
                job.id,
                job.task_id,
                error,
                extra=job_fields(job),
            )
            if isinstance(error, UnauthorizedError):
                await self.alerts.alert(AlertKind.KEY_REFUSED, str(error))
            if overdue:
                await self._expire(job)
                return
            async with self.database.transaction() as session:
                await self.jobs.update_fields(
                    session, job.id, JobState.RUNNING, next_poll_at=now + STATUS_RETRY_DELAY
                )
            return
        if overdue and status.phase not in {TaskPhase.COMPLETED, TaskPhase.FAILED}:
            await self._expire(job)
            return
        await self._apply_status(job, status, pressure)

    async def _expire(self, job: Job) -> None:
        await self._finish_unsuccessfully(
            job, JobState.RUNNING, JobState.EXPIRED, FailureReason.EXPIRED, "timed out"
        )

    async def _apply_status(self, job: Job, status: TaskStatus, pressure: float) -> None:
        now = self.clock.now()
        submitted_at = job.submitted_at or job.created_at
        elapsed = (now - submitted_at).total_seconds()
        last_polled = job.last_polled_at or submitted_at
        pending_until = max(0.0, (last_polled - submitted_at).total_seconds())
        phase = status.phase
        if phase is TaskPhase.COMPLETED:
            if not status.videos:
                await self._finish_unsuccessfully(
                    job,
                    JobState.RUNNING,
                    JobState.FAILED,
                    FailureReason.GENERATION_FAILED,
                    "completed without a video",
                )
                return
            estimate = self.durations.point_estimate(pending_until, elapsed)
            async with self.database.transaction() as session:
                moved = await self.jobs.transition(
                    session,
                    job.id,
                    JobState.RUNNING,
                    JobState.DELIVERING,
                    consumed_credits=status.consumed_credits,
                    video_urls=list(status.videos),
                    completed_at=now,
                    estimated_duration=estimate,
                    last_polled_at=now,
                    poll_count=job.poll_count + 1,
                    next_poll_at=now + DELIVERY_LEASE,
                )
                delivering = await self.jobs.get(session, job.id) if moved else None
            if delivering is not None:
                # Learned once, by the worker whose transition won (the others read it later).
                self.durations.observe(pending_until, elapsed)
                self._learned_here[job.id] = None
                while len(self._learned_here) > LEARNED_HERE_MEMORY:
                    self._learned_here.popitem(last=False)
                await self.deliver(delivering)
            return
        if phase is TaskPhase.FAILED:
            await self._finish_unsuccessfully(
                job,
                JobState.RUNNING,
                JobState.FAILED,
                FailureReason.GENERATION_FAILED,
                status.error_message or status.status,
                consumed=status.consumed_credits,
            )
            return
        if job.last_polled_at is None:
            self.durations.observe_running_at_first_poll(elapsed)
        next_at = submitted_at + timedelta(
            seconds=self.planner.next_poll(elapsed, pressure=pressure)
        )
        async with self.database.transaction() as session:
            updated = await self.jobs.update_fields(
                session,
                job.id,
                JobState.RUNNING,
                next_poll_at=next_at,
                last_polled_at=now,
                poll_count=job.poll_count + 1,
            )
            job = await self.jobs.get(session, job.id) if updated else job
        if updated:
            await self._notify_progress(job, status.status)

    async def deliver(self, job: Job) -> None:
        """Post a finished job's video and settle its credits, exactly once."""
        now = self.clock.now()
        async with self.database.transaction() as session:
            # Counting the attempt first lets a restarted process know a post may have happened.
            if not await self.jobs.update_fields(
                session,
                job.id,
                JobState.DELIVERING,
                delivery_attempts=job.delivery_attempts + 1,
                next_poll_at=now + DELIVERY_LEASE,
            ):
                return
            job = await self.jobs.get(session, job.id)
        assert job is not None
        self.metrics.delivery_attempts.inc()
        try:
            delivery = await self._deliver_under_lease(job)
        except Exception:
            log.exception(
                "delivery of job %s failed (attempt %d)",
                job.id,
                job.delivery_attempts,
                extra=job_fields(job),
            )
            if job.delivery_attempts >= MAX_DELIVERY_ATTEMPTS:
                await self._finish_unsuccessfully(
                    job,
                    JobState.DELIVERING,
                    JobState.FAILED,
                    FailureReason.DELIVERY_FAILED,
                    "could not post the video",
                )
                return
            retry_in = DELIVERY_RETRY * 2 ** (job.delivery_attempts - 1)
            async with self.database.transaction() as session:
                await self.jobs.update_fields(
                    session, job.id, JobState.DELIVERING, next_poll_at=self.clock.now() + retry_in
                )
            return
        delivered_at = self.clock.now()
        consumed = job.consumed_credits if job.consumed_credits is not None else job.cost
        async with self.database.transaction() as session:
            delivered = await self.jobs.transition(
                session,
                job.id,
                JobState.DELIVERING,
                JobState.DELIVERED,
                delivered_at=delivered_at,
                result_message_id=delivery.message_id,
                interaction_token=None,
                next_poll_at=None,
            )
            if delivered:
                if consumed > job.cost:
                    # The ledger records what the operator really paid, even above the price.
                    log.warning(
                        "job %s consumed %d credits, more than the %d reserved",
                        job.id,
                        consumed,
                        job.cost,
                        extra=job_fields(job),
                    )
                await self.budgets.settle(session, job.id, consumed)
        if not delivered:
            return
        log.info("job %s delivered", job.id, extra=job_fields(job))
        completed_at = job.completed_at
        self.metrics.job_delivered(
            guild_id=job.guild_id,
            settled=consumed,
            status_checks=job.poll_count,
            generation_seconds=_seconds_between(job.submitted_at, completed_at),
            lateness_seconds=_seconds_between(completed_at, delivered_at),
        )

    async def _deliver_under_lease(self, job: Job) -> Delivery:
        """The notifier's delivery, its lease renewed for as long as the upload takes."""
        renewing = asyncio.create_task(self._renew_delivery_lease(job))
        try:
            return await self.notifier.deliver(job)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def _renew_delivery_lease(self, job: Job) -> None:
        # Renewed well before it runs out, so no other worker starts a second post meanwhile.
        while True:
            await self.clock.sleep(DELIVERY_LEASE.total_seconds() / 3)
            async with self.database.transaction() as session:
                renewed = await self.jobs.renew_delivery(
                    session,
                    job.id,
                    attempt=job.delivery_attempts,
                    until=self.clock.now() + DELIVERY_LEASE,
                )
            if not renewed:
                log.warning("job %s: delivery lease lost", job.id, extra=job_fields(job))
                return

    async def _finish_unsuccessfully(
        self,
        job: Job,
        from_state: JobState,
        to_state: JobState,
        reason: FailureReason,
        text: str,
        *,
        consumed: int | None = None,
    ) -> Job | None:
        """End a job without a video and refund it, in one transaction; then tell the member.

        ``consumed``: what the API reported the task consumed, if it said.
        """
        fields = {} if consumed is None else {"consumed_credits": consumed}
        async with self.database.transaction() as session:
            moved = await self.jobs.transition(
                session,
                job.id,
                from_state,
                to_state,
                error_code=reason.value,
                error_text=text[:1000],
                next_poll_at=None,
                **fields,
            )
            if not moved:
                return None
            refunded = await self.budgets.refund(session, job.id)
            ended = await self.jobs.get(session, job.id)
        assert ended is not None
        log.info(
            "job %s %s (%s): %s; refunded %d",
            job.id,
            to_state,
            reason,
            text,
            refunded,
            extra=job_fields(job),
        )
        self.metrics.job_ended(
            to_state.value,
            guild_id=ended.guild_id,
            reason=reason.value,
            refunded=refunded,
            # Credits the API took for a job its server got back: the operator's loss.
            lost=(ended.consumed_credits or 0) if refunded else 0,
        )
        try:
            await self.notifier.job_failed(ended, reason, refunded)
        except Exception:
            log.exception(
                "could not tell the member that job %s ended", job.id, extra=job_fields(job)
            )
        return ended

    async def _show_until_sent(self, job: Job, sending: asyncio.Task[SubmitOutcome]) -> None:
        """Show that the job is being sent; while it waits for the rate budget, its place."""
        await self._notify_progress(job, "submitting")
        shown: int | None = None
        wait = QUEUE_NOTICE_AFTER
        while not await self._done_within(sending, wait):
            place = await self.queue_place(job)
            if place is None:
                return  # sent or ended meanwhile: what comes next shows itself
            if place.position != shown:
                shown = place.position
                try:
                    await self.notifier.job_queued(job, place)
                except Exception:
                    log.exception("queue update for job %s failed", job.id, extra=job_fields(job))
            wait = max(QUEUE_REFRESH, len(self._sends) / QUEUE_EDITS_PER_SECOND)

    async def _done_within(self, task: asyncio.Future[SubmitOutcome], seconds: float) -> bool:
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return task.done()

    async def _notify_progress(self, job: Job, status: str) -> None:
        try:
            await self.notifier.job_progress(job, self.progress_of(job, status))
        except Exception:
            log.exception("progress update for job %s failed", job.id, extra=job_fields(job))

    def progress_of(self, job: Job, status: str) -> Progress:
        """What to show a member about a job still running."""
        submitted_at = job.submitted_at
        if submitted_at is None:
            return Progress(submitted_at=None, estimated_ready_at=None, status=status)
        elapsed = (self.clock.now() - submitted_at).total_seconds()
        remaining = self.durations.expected_remaining(max(0.0, elapsed))
        ready_at = self.clock.now() + timedelta(seconds=remaining)
        return Progress(submitted_at=submitted_at, estimated_ready_at=ready_at, status=status)


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None
