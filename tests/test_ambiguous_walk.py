"""``flask db upgrade +1`` at a branch point names the branches instead of a bare "Ambiguous walk"."""

from __future__ import annotations

import pytest
from alembic import command

from safe_migrations.runtime import MigrationFailed
from tests.helpers import HEAD, add_revision
from tests.support.inprocess import migration_config


def test_a_relative_step_at_a_branch_point_names_the_branches(sqlite_url, tmp_path):
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    add_revision(tmp_path, "brn000000001", "pass", message="Left branch")
    add_revision(tmp_path, "brn000000002", "pass", message="Right branch", file_prefix="29990102")
    with migration_config(sqlite_url, tmp_path / "migrations" / "versions") as config:
        command.upgrade(config, HEAD)
        with pytest.raises(MigrationFailed) as ambiguous:
            command.upgrade(config, "+1")
    assert str(ambiguous.value) == (
        f"Ambiguous walk: +1 from {HEAD} could go to any of brn000000001 (Left branch), brn000000002 (Right "
        "branch); name the revision to go to (flask db upgrade REVISION), or upgrade every branch: flask db "
        f"upgrade heads; the database stays at {HEAD}"
    )
