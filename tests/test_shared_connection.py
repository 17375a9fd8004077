"""Alembic's cookbook recipe: the caller's own connection in ``config.attributes["connection"]``.

Migration test plugins walk the revisions one at a time, up and down, on one
connection they own (sometimes inside their own transaction). The toolset must
use that connection, respect its transaction and still keep the ledger: with no
transaction open, each revision commits on its own; inside the caller's
transaction nothing is committed until the caller commits.
"""

from __future__ import annotations

import pytest

from tests.helpers import BIN, REVISIONS, query, run

WALK = """
import sys
from alembic import command
from sqlalchemy import create_engine, text
from app import create_app
from safe_migrations.scripts import alembic_config

mode, steps = sys.argv[1], int(sys.argv[2])
app = create_app()
engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
with app.app_context(), engine.connect() as connection:
    config = alembic_config(app)
    config.attributes["connection"] = connection
    if mode == "transaction":
        connection.begin()
    for _ in range(steps):
        command.upgrade(config, "+1")
        print("up", connection.execute(text("SELECT version_num FROM alembic_version")).scalar())
        if mode == "connection":
            connection.rollback()  # end the read; the next command finds no transaction and commits its own
    for _ in range(steps):
        command.downgrade(config, "-1")
        print("down", connection.execute(text("SELECT count(*) FROM alembic_version")).scalar())
        if mode == "connection":
            connection.rollback()
    if mode == "transaction":
        connection.commit()
engine.dispose()
"""


@pytest.mark.parametrize("mode", ["connection", "transaction"])
def test_walk_up_and_down_on_the_callers_connection(database_url, mode):
    result = run([str(BIN / "python"), "-c", WALK, mode, str(len(REVISIONS))], database_url=database_url, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    ups = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("up ")]
    assert ups == REVISIONS
    assert result.stdout.splitlines()[-1] == "down 0"
    ledger = query(database_url, "SELECT revision, direction FROM migration_history ORDER BY id")
    assert ledger == [(rev, "up") for rev in REVISIONS] + [(rev, "down") for rev in reversed(REVISIONS)]
    assert query(database_url, "SELECT version_num FROM alembic_version") == []
