"""Pod start-up refuses a release whose worst case outlasts the startupProbe, with the arithmetic.

The settings are the k8s configmap's own (MIGRATION_STATEMENT_TIMEOUT 120 s,
lock waits 61 s, STARTUP_PROBE_SECONDS 410, DB_WAIT_TIMEOUT 60): three long
statements (421 s) are refused before anything runs, instead of a pod the probe
kills mid-migration on every attempt; applied from a Job first, the rest fits.
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, pool

from safe_migrations.settings import MigrationSettings
from safe_migrations.startup import StartupError, migrate
from tests.helpers import HEAD, add_revision, query
from tests.support.inprocess import migrating_app, migration_config
from tests.test_deploy_files import load_manifest

TWO_INDEXES = (
    "op.create_index('ix_market_latitude', 'market', ['latitude'])\n"
    "op.create_index('ix_market_longitude', 'market', ['longitude'])"
)
ONE_UPDATE = "op.execute(\"UPDATE market SET address = '' WHERE address IS NULL\")"


def test_startup_refuses_a_release_over_the_startup_probe_budget(pg_url, tmp_path):
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    add_revision(tmp_path, "slo000000001", TWO_INDEXES)
    add_revision(tmp_path, "slo000000002", ONE_UPDATE, down_revision="slo000000001", file_prefix="29990102")
    settings = MigrationSettings.from_env(load_manifest("configmap.yaml")["data"])
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with migration_config(pg_url, versions) as config:
        command.upgrade(config, HEAD)
        with migrating_app(pg_url, versions) as app, pytest.raises(StartupError) as refused:
            migrate(app, engine, settings)
        said = str(refused.value)
        assert said.startswith(
            "database migration: the pending revisions may outlast the startupProbe, which would kill this pod "
            "mid-migration on every attempt: 3 long statement(s) x 120 s (MIGRATION_STATEMENT_TIMEOUT) + 61 s of "
            "lock waits (6 x 5 s MIGRATION_LOCK_TIMEOUT + 31 s backoff) = 421 s > 320 s (STARTUP_PROBE_SECONDS 410 "
            "- DB_WAIT_TIMEOUT 60 - 30 s to start serving); long: slo000000001: CREATE INDEX ix_market_latitude ON "
            "market (latitude); "
        )
        assert said.endswith(
            "apply them before the rollout from a Job like k8s/post-deploy-job.yaml running `flask db upgrade "
            "slo000000002` (no statement deadline from a probe), then roll out; or measure them first with `flask db "
            "rehearse`; nothing was applied"
        )
        assert query(pg_url, "SELECT version_num FROM alembic_version") == [(HEAD,)]

        command.upgrade(config, "slo000000001")  # what the Job does first
        with migrating_app(pg_url, versions) as app:
            migrate(app, engine, settings)  # one long statement: 181 s fits in 320 s
    engine.dispose()
    assert query(pg_url, "SELECT version_num FROM alembic_version") == [("slo000000002",)]
