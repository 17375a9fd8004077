"""``flask db stamp`` keeps the bookkeeping in agreement with the database (on PostgreSQL).

Each defect of a plain stamp, and the state the user is left in instead:
no data migration run twice, no crash-loop from a stamp below the schema, no
pod serving a schema stamped above what is there, and a ``head`` that names
the heads to choose from instead of "revision ? failed".
"""

from __future__ import annotations

import re

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from safe_migrations.doctor import diagnose
from safe_migrations.gates import MigrationRefused
from safe_migrations.scripts import alembic_config
from safe_migrations.stamp_checks import CONFIRM_STAMP
from safe_migrations.startup import report_drift
from safe_migrations.status import STAMPED_BACKWARDS, read_status
from tests.helpers import HEAD, INITIAL, REVISIONS, add_revision, execute, query, scalar
from tests.support.inprocess import migrating_app, migration_config

DATA_MIGRATION = "op.execute('UPDATE market SET latitude = latitude + 1')"
MARKET = (
    "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
    "VALUES ('Gwangjang', 'Seoul', 0.1, 127.0, 60, 127, now(), now())"
)


def version(url: str) -> list[str]:
    return [row[0] for row in query(url, "SELECT version_num FROM alembic_version")]


def test_stamping_back_below_an_applied_data_migration_never_runs_it_twice(pg_url, tmp_path):
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    add_revision(tmp_path, "dat000000001", DATA_MIGRATION, message="Move every market one degree north")
    with migration_config(pg_url, tmp_path / "migrations" / "versions") as config:
        command.upgrade(config, HEAD)
        execute(pg_url, MARKET)
        command.upgrade(config, "heads")
        assert scalar(pg_url, "SELECT latitude FROM market") == pytest.approx(1.1)

        with pytest.raises(MigrationRefused) as refused:
            command.stamp(config, HEAD)
        assert str(refused.value) == (
            f"stamping {HEAD} would mark dat000000001 as not applied, but the ledger records them as applied: the "
            "next upgrade (and pod start-up) would run them a second time, data migrations included; to revert "
            f"them, run `flask db downgrade {HEAD}` instead; nothing was stamped (repeat with --yes to stamp anyway)"
        )
        assert version(pg_url) == ["dat000000001"]

        # Stamped anyway (--yes): doctor, upgrade and start-up all see the ledger's word.
        config.attributes[CONFIRM_STAMP] = True
        command.stamp(config, HEAD)
        config.attributes[CONFIRM_STAMP] = False
        with pytest.raises(MigrationRefused) as again:
            command.upgrade(config, "heads")
        assert str(again.value) == (
            f"alembic_version is at {HEAD}, but the ledger records dat000000001 as applied; flask db stamp "
            "dat000000001 (back to what the ledger records as applied); to run them again on purpose: flask db "
            "upgrade --yes; nothing was applied"
        )
        assert scalar(pg_url, "SELECT latitude FROM market") == pytest.approx(1.1)
        engine = create_engine(pg_url, poolclass=pool.NullPool)
        with engine.connect() as connection:
            status = read_status(connection, ScriptDirectory.from_config(config))
        engine.dispose()
        assert status.state == STAMPED_BACKWARDS and status.serves  # pods keep serving; nothing runs twice

        command.stamp(config, "dat000000001")  # the fix the line gives
    assert version(pg_url) == ["dat000000001"]
    assert scalar(pg_url, "SELECT latitude FROM market") == pytest.approx(1.1)


def test_stamping_below_the_schema_that_is_there_is_refused(pg_url):
    with migration_config(pg_url) as config:
        command.upgrade(config, "heads")
        execute(pg_url, "DELETE FROM alembic_version")
        with pytest.raises(MigrationRefused) as refused:
            command.stamp(config, INITIAL)
    said = str(refused.value)
    assert said.startswith(f"stamping {INITIAL} would leave {REVISIONS[1]}, {REVISIONS[2]}, ")
    assert {"market_alarm_log.sent_to_devices", "push_delivery"} <= named(said, "create is already there")
    assert 'every upgrade (and pod start-up) would fail with "already exists"' in said
    assert said.endswith("nothing was stamped (repeat with --yes to stamp anyway)")
    assert version(pg_url) == []


def named(said: str, after: str) -> set[str]:
    """The tables and columns a refusal lists in parentheses after ``after``."""
    match = re.search(rf"{after} \((?P<names>[^)]*)\)", said)
    assert match, said
    return set(re.sub(r" and \d+ more$", "", match["names"]).split(", "))


def test_stamping_above_the_schema_that_is_there_is_refused(pg_url):
    with migration_config(pg_url) as config:
        command.upgrade(config, INITIAL)
        with pytest.raises(MigrationRefused) as refused:
            command.stamp(config, "heads")
    said = str(refused.value)
    assert said.startswith(f"stamping heads would mark {REVISIONS[1]}, {REVISIONS[2]}, ")
    assert {"market_alarm_log.sent_to_devices", "push_delivery"} <= named(said, "what they create is missing")
    assert said.endswith(
        "every query on it would fail; run `flask db upgrade heads` instead (it runs them); nothing was stamped "
        "(repeat with --yes to stamp anyway)"
    )
    assert version(pg_url) == [INITIAL]


def test_a_forced_stamp_above_the_schema_gets_the_right_fix_from_doctor_and_start_up(pg_url, caplog):
    with migrating_app(pg_url) as app:
        config = alembic_config(app)
        config.attributes.update({"configure_logger": False, CONFIRM_STAMP: True})
        command.upgrade(config, INITIAL)
        command.stamp(config, "heads")
        engine = create_engine(pg_url, poolclass=pool.NullPool)
        report_drift(app, engine)
        engine.dispose()
        checks = diagnose(config, pg_url, app.extensions["migrate"].db.metadata, None)
    models = next(check for check in checks if check.name == "models")
    assert not models.ok and models.cause.startswith(f"the ledger's last step is a stamp at {HEAD}")
    assert models.fix == "flask db stamp back to the revision the schema is at, then flask db upgrade (runs them)"
    warned = [r.getMessage() for r in caplog.records if "schema differs from the migrations" in r.getMessage()]
    assert warned and "init_migration" not in warned[0]


POST_DEPLOY = dict(header="post_deploy = True", down_revision=None, branch_labels=("post_deploy",), depends_on=HEAD)


def test_stamp_head_with_a_post_deploy_chain_names_the_heads(pg_url, tmp_path):
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    add_revision(tmp_path, "pdp000000001", "pass", message="Contract nothing", **POST_DEPLOY)
    with migrating_app(pg_url, tmp_path / "migrations" / "versions") as app:
        cli = app.test_cli_runner()
        assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
        ambiguous = cli.invoke(args=["db", "stamp", "head"])
        assert ambiguous.exit_code == 1
        assert ambiguous.output.strip().splitlines()[-1] == (
            f"flask db stamp: stamp head: the scripts have several heads ({HEAD} (ordinary), pdp000000001 "
            "(post-deploy chain)); stamp `heads` to record every chain as applied, or name one revision; nothing "
            "was stamped"
        )
        plain = cli.invoke(args=["db", "stamp"])
    assert plain.exit_code == 0 and plain.output.strip().splitlines()[-1] == "stamped heads: nothing was run"
    assert version(pg_url) == ["pdp000000001"]
