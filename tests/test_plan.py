"""The one place the toolset reads how Alembic calls env.py: fails when Alembic changes it.

``safe_migrations.plan`` tells upgrade, downgrade, stamp and read-only commands
apart from the options each Alembic command passes to its environment. Here
every command of Alembic's Python API runs a minimal env.py that records the
kind the toolset reads, against a real SQLite database.
"""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config

from safe_migrations.plan import Kind

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine
from safe_migrations.plan import command_kind

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection)
    migration_context = context.get_context()
    config.attributes["kinds"].append(command_kind(migration_context, tuple(migration_context.get_current_heads())))
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
"""

REVISION = """
revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None

def upgrade():
    pass

def downgrade():
    pass
"""


@pytest.fixture
def config(tmp_path) -> Config:
    (tmp_path / "env.py").write_text(ENV_PY)
    (tmp_path / "script.py.mako").write_text("")
    versions = tmp_path / "versions"
    versions.mkdir()
    for rev, down in (("a1", None), ("b2", "a1")):
        (versions / f"{rev}.py").write_text(REVISION.format(rev=rev, down=down))
    cfg = Config()
    cfg.set_main_option("script_location", str(tmp_path))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{tmp_path / 'plan.db'}")
    cfg.attributes["kinds"] = []
    return cfg


def test_each_alembic_command_is_read_as_its_kind(config):
    command.upgrade(config, "+1")
    command.upgrade(config, "head")
    command.downgrade(config, "-1")
    command.upgrade(config, "b2")
    command.downgrade(config, "a1")
    command.downgrade(config, "base")
    command.stamp(config, "head")
    command.current(config)
    assert config.attributes["kinds"] == [
        Kind.UPGRADE,
        Kind.UPGRADE,
        Kind.DOWNGRADE,
        Kind.UPGRADE,
        Kind.DOWNGRADE,
        Kind.DOWNGRADE,
        Kind.STAMP,
        Kind.READ,
    ]
