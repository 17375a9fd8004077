"""A failed revision says what PostgreSQL said: the primary message, DETAIL and HINT, on one line."""

from __future__ import annotations

import pytest
from alembic import command

from safe_migrations.runtime import MigrationFailed
from tests.helpers import HEAD, add_revision
from tests.support.inprocess import migration_config


def test_a_failed_revision_carries_postgresqls_hint(pg_url, tmp_path):
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    add_revision(tmp_path, "typ000000001", "op.execute('UPDATE market SET address = nme')")
    with migration_config(pg_url, tmp_path / "migrations" / "versions") as config:
        command.upgrade(config, HEAD)
        with pytest.raises(MigrationFailed) as failed:
            command.upgrade(config, "heads")
    assert str(failed.value) == (
        'revision typ000000001 failed: column "nme" does not exist; HINT: Perhaps you meant to reference the '
        f'column "market.name".; the database stays at {HEAD}'
    )
