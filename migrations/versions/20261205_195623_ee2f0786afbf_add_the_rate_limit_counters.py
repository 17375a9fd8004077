"""Add the rate limit counters

Revision ID: ee2f0786afbf
Revises: 7c1d2e3f4a5b
Create Date: 2026-12-05 19:56:23.478939

rate_limit_counter holds the fixed-window counters of the API's rate limits
(weather/rate_limits.py), shared by every pod. A new table: creating it and its
index blocks nobody. Its rows are short-lived counters, so the downgrade drops
the table without losing anything worth keeping.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "ee2f0786afbf"
down_revision = "7c1d2e3f4a5b"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "rate_limit_counter",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counter")),
    )
    with op.batch_alter_table("rate_limit_counter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rate_limit_counter_expires_at"), ["expires_at"], unique=False)


def downgrade():
    with op.batch_alter_table("rate_limit_counter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_limit_counter_expires_at"))
    op.drop_table("rate_limit_counter")
