"""Add keyset index on market alarm log and unique market name per region

Revision ID: eed4f6347fc7
Revises: 43e96d39df75
Create Date: 2026-11-26 00:50:05.994983

Both indexes are built on existing, live tables, so on PostgreSQL they are
created (and dropped) CONCURRENTLY: a plain CREATE INDEX holds a lock that
blocks every insert into the table for as long as the build takes, which on
market_alarm_log would stall forecast ingests. CONCURRENTLY cannot run inside
a transaction, so these steps run in an autocommit block, outside the
revision's transaction; safe_migrations.operations does that, and drops an
invalid index left by an interrupted build before retrying. On SQLite the same
steps run as plain CREATE/DROP INDEX.

The unique index fails if two markets already share a name in one region;
merge or rename those before upgrading.
"""

from safe_migrations.operations import create_index_concurrently, drop_index_concurrently


# revision identifiers, used by Alembic.
revision = "eed4f6347fc7"
down_revision = "43e96d39df75"
branch_labels = None
depends_on = None


def upgrade():
    create_index_concurrently("uq_market_name_region", "market", ["name", "region"], unique=True)
    create_index_concurrently(
        "ix_market_alarm_log_market_id_created_at_id", "market_alarm_log", ["market_id", "created_at", "id"]
    )


def downgrade():
    drop_index_concurrently("ix_market_alarm_log_market_id_created_at_id", "market_alarm_log")
    drop_index_concurrently("uq_market_name_region", "market")
