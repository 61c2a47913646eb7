"""personal history for server-computed baselines

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 18:45:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "personal_days",
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sleep_h", sa.Float(), nullable=True),
        sa.Column("midpoint_h", sa.Float(), nullable=True),
        sa.Column("resting_hr_bpm", sa.Float(), nullable=True),
        sa.Column("hrv_rmssd_ms", sa.Float(), nullable=True),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("positives", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_key", "day", name=op.f("pk_personal_days")),
    )
    op.create_table(
        "personal_moments",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("server_computed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_personal_moments")),
    )
    with op.batch_alter_table("personal_moments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_personal_moments_user_key"), ["user_key"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("personal_moments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_personal_moments_user_key"))
    op.drop_table("personal_moments")
    op.drop_table("personal_days")
