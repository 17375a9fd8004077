"""Add keyset index on market alarm log and unique market name per region

Revision ID: eed4f6347fc7
Revises: 43e96d39df75
Create Date: 2026-11-26 00:50:05.994983

Both indexes are built on existing, live tables, so on PostgreSQL they are
created (and dropped) CONCURRENTLY: a plain CREATE INDEX holds a lock that
blocks every insert into the table for as long as the build takes, which on
market_alarm_log would stall forecast ingests. CONCURRENTLY cannot run inside
a transaction, so these steps run in an autocommit block, outside the
revision's transaction. IF [NOT] EXISTS makes a retry after an interrupted
run safe. On SQLite the same statements run as plain CREATE/DROP INDEX.

The unique index fails if two markets already share a name in one region;
merge or rename those before upgrading.
"""

from alembic import op


# revision identifiers, used by Alembic.
revision = "eed4f6347fc7"
down_revision = "43e96d39df75"
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index(
            "uq_market_name_region",
            "market",
            ["name", "region"],
            unique=True,
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.create_index(
            "ix_market_alarm_log_market_id_created_at_id",
            "market_alarm_log",
            ["market_id", "created_at", "id"],
            unique=False,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_market_alarm_log_market_id_created_at_id",
            table_name="market_alarm_log",
            postgresql_concurrently=True,
            if_exists=True,
        )
        op.drop_index(
            "uq_market_name_region",
            table_name="market",
            postgresql_concurrently=True,
            if_exists=True,
        )
