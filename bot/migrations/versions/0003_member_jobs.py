"""A member's unfinished jobs are listed by /credits; the interaction id was never read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_job_guild_id_member_id_state", "job", ["guild_id", "member_id", "state"], unique=False
    )
    with op.batch_alter_table("job") as batch:
        batch.drop_column("interaction_id")


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("interaction_id", sa.BigInteger(), nullable=True))
    op.drop_index("ix_job_guild_id_member_id_state", table_name="job")
