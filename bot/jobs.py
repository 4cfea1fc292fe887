"""The job store and its state machine.

Every state change is one conditional UPDATE on the previous state, so when two workers (or a
worker and a restart) race for the same step exactly one of them wins and the other learns it
from the return value.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bot.clock import Clock
from bot.db import Database
from bot.models import Job


class JobState(StrEnum):
    CREATED = "created"  # credits reserved; the POST was certainly not sent yet
    SUBMITTING = "submitting"  # the POST may have been sent; after a crash its outcome is unknown
    RUNNING = "running"  # the API accepted it: there is a task_id to poll
    DELIVERING = "delivering"  # the video is ready and being posted to Discord
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the API refused the request
    FAILED = "failed"
    EXPIRED = "expired"  # the API never finished in time
    CANCELLED = "cancelled"  # withdrawn by a member or an admin before it was sent


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.DELIVERED, JobState.REJECTED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED}
)
ACTIVE_STATES: frozenset[JobState] = frozenset(JobState) - TERMINAL_STATES

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.CREATED: frozenset({JobState.SUBMITTING, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUBMITTING: frozenset({JobState.RUNNING, JobState.REJECTED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.DELIVERING, JobState.FAILED, JobState.EXPIRED}),
    JobState.DELIVERING: frozenset({JobState.DELIVERED, JobState.FAILED}),
}

# Columns that only the store itself writes.
_PROTECTED_FIELDS = frozenset({"id", "state", "idempotency_key", "created_at", "updated_at"})


class IllegalTransition(Exception):
    """The state machine has no such edge; a programming error, not a race."""

    def __init__(self, from_state: JobState, to_state: JobState) -> None:
        super().__init__(f"no transition from {from_state} to {to_state}")
        self.from_state = from_state
        self.to_state = to_state


@dataclass(frozen=True, slots=True)
class NewJob:
    """What a member asked for, and where to answer."""

    guild_id: int
    channel_id: int
    member_id: int
    locale: str
    prompt: str
    mode: str
    ratio: str
    image_urls: tuple[str, ...]
    progress_message_id: int | None  # the public message that shows the job's progress
    interaction_token: str | None
    interaction_expires_at: datetime | None
    upload_limit_bytes: int
    cost: int
    reroll_of: str | None = None


class JobStore:
    """Job rows; each method works in the session of the caller's open transaction."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock

    async def create(self, session: AsyncSession, new: NewJob, *, next_poll_at: datetime) -> Job:
        now = self._clock.now()
        job = Job(
            id=uuid.uuid4().hex,
            idempotency_key=uuid.uuid4().hex,
            state=JobState.CREATED,
            guild_id=new.guild_id,
            channel_id=new.channel_id,
            member_id=new.member_id,
            locale=new.locale,
            prompt=new.prompt,
            mode=new.mode,
            ratio=new.ratio,
            image_urls=list(new.image_urls),
            progress_message_id=new.progress_message_id,
            interaction_token=new.interaction_token,
            interaction_expires_at=new.interaction_expires_at,
            upload_limit_bytes=new.upload_limit_bytes,
            cost=new.cost,
            reroll_of=new.reroll_of,
            created_at=now,
            updated_at=now,
            next_poll_at=next_poll_at,
        )
        session.add(job)
        await session.flush()
        return job

    async def get(self, session: AsyncSession, job_id: str) -> Job | None:
        return await session.get(Job, job_id, populate_existing=True)

    async def transition(
        self,
        session: AsyncSession,
        job_id: str,
        from_state: JobState,
        to_state: JobState,
        **fields: Any,
    ) -> bool:
        """Move the job from ``from_state`` to ``to_state`` and write ``fields`` with it.

        False when the job was not in ``from_state``: someone else took this step.
        """
        if to_state not in TRANSITIONS.get(from_state, frozenset()):
            raise IllegalTransition(from_state, to_state)
        return await self._conditional_update(
            session, job_id, from_state, {**_checked(fields), "state": to_state}
        )

    async def update_fields(
        self, session: AsyncSession, job_id: str, expected_state: JobState, **fields: Any
    ) -> bool:
        """Write ``fields`` if the job is still in ``expected_state``; the state stays."""
        return await self._conditional_update(session, job_id, expected_state, _checked(fields))

    async def renew_delivery(
        self, session: AsyncSession, job_id: str, *, attempt: int, until: datetime
    ) -> bool:
        """Extend a delivery's lease while ``attempt`` is still the job's latest one.

        False: the job was delivered, failed, or another worker began a later attempt.
        """
        result = await session.exec(
            update(Job)
            .where(
                col(Job.id) == job_id,
                col(Job.state) == JobState.DELIVERING,
                col(Job.delivery_attempts) == attempt,
            )
            .values(next_poll_at=until, updated_at=self._clock.now())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def forget_interaction(self, session: AsyncSession, job_id: str) -> None:
        """Drop the job's interaction token: Discord refused it, so it is never tried again."""
        await session.exec(
            update(Job)
            .where(col(Job.id) == job_id)
            .values(interaction_token=None, interaction_expires_at=None)
            .execution_options(synchronize_session=False)
        )

    async def claim_due(
        self,
        session: AsyncSession,
        now: datetime,
        limit: int,
        *,
        lease_seconds: float,
        states: Collection[JobState] = ACTIVE_STATES,
    ) -> list[Job]:
        """Take due jobs for this worker: their next_poll_at moves ``lease_seconds`` ahead.

        Rows locked by another claimer are skipped (PostgreSQL); on SQLite the database lock
        serializes claimers. Either way no job is handed to two workers within its lease.
        """
        claimable = _due(now, limit, states).with_for_update(skip_locked=True)
        jobs = list((await session.exec(claimable)).all())
        if not jobs:
            return []
        lease_until = now + timedelta(seconds=lease_seconds)
        await session.exec(
            update(Job)
            .where(col(Job.id).in_([job.id for job in jobs]))
            .values(next_poll_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        for job in jobs:
            job.next_poll_at = lease_until
        return jobs

    async def next_due_at(
        self, session: AsyncSession, states: Collection[JobState] = ACTIVE_STATES
    ) -> datetime | None:
        """The earliest next_poll_at among jobs in ``states``; None when there is none."""
        earliest = await session.exec(
            select(func.min(Job.next_poll_at)).where(col(Job.state).in_(list(states)))
        )
        return earliest.one()

    async def active_for_member(
        self, session: AsyncSession, guild_id: int, member_id: int, *, limit: int
    ) -> tuple[list[Job], int]:
        """A member's unfinished jobs in a guild, oldest first (at most ``limit``), and how many."""
        active = (
            col(Job.guild_id) == guild_id,
            col(Job.member_id) == member_id,
            col(Job.state).in_(list(ACTIVE_STATES)),
        )
        jobs = await session.exec(
            select(Job).where(*active).order_by(col(Job.created_at), col(Job.id)).limit(limit)
        )
        total = await session.exec(select(func.count()).select_from(Job).where(*active))
        return list(jobs.all()), total.one()

    async def waiting_ahead_of(self, session: AsyncSession, job: Job) -> int:
        """Jobs of every server still waiting to be sent that were created before ``job``."""
        rows = await session.exec(
            select(func.count())
            .select_from(Job)
            .where(
                Job.state == JobState.CREATED,
                # Ties (one clock tick) break on the id, so that two jobs never share a place.
                or_(
                    col(Job.created_at) < job.created_at,
                    and_(col(Job.created_at) == job.created_at, col(Job.id) < job.id),
                ),
            )
        )
        return rows.one()

    async def running_by_guild(self, session: AsyncSession) -> dict[int, int]:
        """How many jobs each guild has running at the API (guilds with none are absent)."""
        rows = await session.exec(
            select(Job.guild_id, func.count())
            .where(Job.state == JobState.RUNNING)
            .group_by(col(Job.guild_id))
        )
        return dict(rows.all())

    async def recent_durations(self, session: AsyncSession, limit: int = 256) -> list[float]:
        """Learned durations of the latest delivered jobs, newest first."""
        rows = await session.exec(
            select(Job.estimated_duration)
            .where(Job.state == JobState.DELIVERED, col(Job.estimated_duration).is_not(None))
            .order_by(col(Job.completed_at).desc())
            .limit(limit)
        )
        return [duration for duration in rows.all() if duration is not None]

    async def latest_completion(self, session: AsyncSession) -> datetime | None:
        latest = await session.exec(select(func.max(Job.completed_at)))
        return latest.one()

    async def durations_completed_after(
        self, session: AsyncSession, after: datetime | None, limit: int = 256
    ) -> list[tuple[str, float, datetime]]:
        """(job id, learned duration, completed at) of jobs done after ``after``, oldest first."""
        query = select(Job.id, Job.estimated_duration, Job.completed_at).where(
            col(Job.estimated_duration).is_not(None), col(Job.completed_at).is_not(None)
        )
        if after is not None:
            query = query.where(col(Job.completed_at) > after)
        rows = await session.exec(query.order_by(col(Job.completed_at)).limit(limit))
        return [
            (job_id, duration, completed)
            for job_id, duration, completed in rows.all()
            if duration is not None and completed is not None
        ]

    async def count_by_state(self, session: AsyncSession) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zeros included)."""
        rows = await session.exec(select(Job.state, func.count()).group_by(col(Job.state)))
        counts = dict.fromkeys(JobState, 0)
        for state, count in rows.all():
            counts[JobState(state)] = count
        return counts

    async def _conditional_update(
        self, session: AsyncSession, job_id: str, expected_state: JobState, values: dict[str, Any]
    ) -> bool:
        result = await session.exec(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.state) == expected_state)
            .values(**values, updated_at=self._clock.now())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = fields.keys() - Job.model_fields.keys()
    protected = fields.keys() & _PROTECTED_FIELDS
    if unknown or protected:
        raise ValueError(f"cannot write job fields {sorted(unknown | protected)}")
    return fields


def _due(now: datetime, limit: int, states: Collection[JobState]) -> SelectOfScalar[Job]:
    return (
        select(Job)
        .where(col(Job.state).in_(list(states)), col(Job.next_poll_at) <= now)
        .order_by(col(Job.next_poll_at), col(Job.id))
        .limit(limit)
        .execution_options(populate_existing=True)
    )


class InteractionTokens:
    """Forgets a job's interaction token once Discord has refused it, across restarts."""

    def __init__(self, database: Database, jobs: JobStore) -> None:
        self._database = database
        self._jobs = jobs

    async def forget(self, job_id: str) -> None:
        async with self._database.transaction() as session:
            await self._jobs.forget_interaction(session, job_id)
