"""Budget alerts: each server's alert settings, and the alerts already claimed for sending.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budget_alert_settings",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("threshold_percent", sa.Integer(), nullable=False),
        sa.Column("ping_role_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_by", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "threshold_percent BETWEEN 1 AND 99",
            name=op.f("ck_budget_alert_settings_threshold_percent_range"),
        ),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guild_budget.guild_id"],
            name=op.f("fk_budget_alert_settings_guild_id_guild_budget"),
        ),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_budget_alert_settings")),
    )
    # The primary key is the claim: inserting it decides which process sends the alert.
    op.create_table(
        "budget_alert_claim",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("budget_credits", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("threshold_percent", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guild_budget.guild_id"],
            name=op.f("fk_budget_alert_claim_guild_id_guild_budget"),
        ),
        sa.PrimaryKeyConstraint(
            "guild_id",
            "period_start",
            "budget_credits",
            "threshold_percent",
            name=op.f("pk_budget_alert_claim"),
        ),
    )


def downgrade() -> None:
    op.drop_table("budget_alert_claim")
    op.drop_table("budget_alert_settings")
