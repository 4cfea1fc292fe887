"""Tables. Discord ids are snowflakes above 2**31, hence BigInteger; times are aware UTC.

Enumerated columns (period, kind, state) are plain strings here; their values live with the
code that owns them (``bot.budget``, ``bot.jobs``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, Float, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from bot.db import UTCDateTime

# Named constraints keep migrations reproducible (and SQLite batch migrations possible).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Autoincrement needs INTEGER PRIMARY KEY on SQLite; PostgreSQL gets a 64-bit identity.
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


class GuildBudget(SQLModel, table=True):
    """A server's budget and the cached totals of its current period."""

    __tablename__ = "guild_budget"

    guild_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    limit_credits: int
    period: str = Field(sa_type=String(16))
    member_cap: int | None = None
    period_start: datetime = Field(sa_type=UTCDateTime)
    balance: int  # credits available now; negative when an admin lowered the limit below use
    reserved: int = 0  # held by jobs in flight
    spent: int = 0  # settled in this period
    bonus: int = 0  # one-off top-ups (or deductions) in this period
    updated_by: int | None = Field(default=None, sa_type=BigInteger)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)


class LedgerEntry(SQLModel, table=True):
    """One change of a guild's balance. Append-only: rows are never updated or deleted."""

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_guild_id_id", "guild_id", "id"),)

    id: int | None = Field(default=None, sa_type=AutoIncrementId, primary_key=True)
    guild_id: int = Field(sa_type=BigInteger, foreign_key="guild_budget.guild_id")
    member_id: int | None = Field(default=None, sa_type=BigInteger)
    job_id: str | None = Field(default=None, sa_type=String(32))
    kind: str = Field(sa_type=String(16))
    amount: int  # signed change of the balance
    actor_id: int | None = Field(default=None, sa_type=BigInteger)
    note: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(sa_type=UTCDateTime)


class Reservation(SQLModel, table=True):
    """Credits held for one job until it is settled or refunded."""

    __tablename__ = "reservation"
    __table_args__ = (Index("ix_reservation_guild_id_state", "guild_id", "state"),)

    job_id: str = Field(sa_type=String(32), primary_key=True)
    guild_id: int = Field(sa_type=BigInteger, foreign_key="guild_budget.guild_id")
    member_id: int = Field(sa_type=BigInteger)
    amount: int
    period_start: datetime = Field(sa_type=UTCDateTime)
    state: str = Field(sa_type=String(16))
    consumed: int | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MemberUsage(SQLModel, table=True):
    """Credits a member reserved or consumed in one period of a guild."""

    __tablename__ = "member_usage"

    guild_id: int = Field(
        sa_type=BigInteger,
        primary_key=True,
        foreign_key="guild_budget.guild_id",
        sa_column_kwargs={"autoincrement": False},
    )
    member_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    period_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    used: int = 0


class Job(SQLModel, table=True):
    """One /imagine request from reservation to delivery."""

    __tablename__ = "job"
    __table_args__ = (
        # Due-job queries filter on state and order by next_poll_at: O(due), not O(jobs).
        Index("ix_job_state_next_poll_at", "state", "next_poll_at"),
        Index("ix_job_state_completed_at", "state", "completed_at"),
        Index("ix_job_guild_id_member_id_state", "guild_id", "member_id", "state"),
    )

    id: str = Field(sa_type=String(32), primary_key=True)
    guild_id: int = Field(sa_type=BigInteger)
    channel_id: int = Field(sa_type=BigInteger)
    member_id: int = Field(sa_type=BigInteger)
    locale: str = Field(sa_type=String(16))
    prompt: str = Field(sa_type=Text)
    mode: str = Field(sa_type=String(16))
    ratio: str = Field(sa_type=String(16))
    image_urls: list[str] = Field(default_factory=list, sa_type=JSON)
    interaction_token: str | None = Field(default=None, sa_type=Text)  # cleared once delivered
    interaction_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    upload_limit_bytes: int = Field(sa_type=BigInteger)
    # The public message that shows progress (the interaction's response), editable through
    # the channel once the interaction token no longer works.
    progress_message_id: int | None = Field(default=None, sa_type=BigInteger)
    result_message_id: int | None = Field(default=None, sa_type=BigInteger)
    task_id: str | None = Field(default=None, sa_type=String(128), unique=True)
    idempotency_key: str = Field(sa_type=String(64), unique=True)
    state: str = Field(sa_type=String(16))
    cost: int  # credits reserved
    consumed_credits: int | None = None
    video_urls: list[str] = Field(default_factory=list, sa_type=JSON)
    error_code: str | None = Field(default=None, sa_type=String(64))
    error_text: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_poll_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    poll_count: int = 0
    last_polled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivery_attempts: int = 0
    reroll_of: str | None = Field(default=None, sa_type=String(32))
    estimated_duration: float | None = Field(default=None, sa_type=Float)


class RateBudget(SQLModel, table=True):
    """The request budget of one API key, shared by every process on this database.

    A token bucket of ``capacity`` tokens (the plan's requests per minute) that refills at
    ``capacity`` per minute; ``tokens`` is its level at ``refilled_at``. ``key`` names the API
    key (a hash of it, never the key itself). See ``bot.shared_budget``.
    """

    __tablename__ = "rate_budget"

    key: str = Field(sa_type=String(64), primary_key=True)
    capacity: int
    tokens: float = Field(sa_type=Float)
    refilled_at: datetime = Field(sa_type=UTCDateTime)
    blocked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)  # after a 429


class BudgetAlertSettings(SQLModel, table=True):
    """Where a server hears that its budget is running low, and at what share (``/budget alerts``).

    No row means no alerts; ``bot.budget_alerts`` explains when they fire.
    """

    __tablename__ = "budget_alert_settings"
    __table_args__ = (
        CheckConstraint("threshold_percent BETWEEN 1 AND 99", name="threshold_percent_range"),
    )

    guild_id: int = Field(
        sa_type=BigInteger,
        primary_key=True,
        foreign_key="guild_budget.guild_id",
        sa_column_kwargs={"autoincrement": False},
    )
    channel_id: int = Field(sa_type=BigInteger)
    threshold_percent: int  # the early warning; running out (100 %) is always announced
    ping_role_id: int | None = Field(default=None, sa_type=BigInteger)  # None: no pings
    updated_by: int | None = Field(default=None, sa_type=BigInteger)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class BudgetAlertClaim(SQLModel, table=True):
    """A budget alert some process took on to send: at most one per key, however many race.

    Keyed by the period and the budget's size in it, so a new period or a changed budget arms
    the thresholds again while refunds, which only lower the spend, do not.
    """

    __tablename__ = "budget_alert_claim"

    guild_id: int = Field(
        sa_type=BigInteger,
        primary_key=True,
        foreign_key="guild_budget.guild_id",
        sa_column_kwargs={"autoincrement": False},
    )
    period_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    budget_credits: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    threshold_percent: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    claimed_at: datetime = Field(sa_type=UTCDateTime)
