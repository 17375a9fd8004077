"""`flask db rehearse`: lock modes as PostgreSQL documents them, rewrites, the --max-stall gate,
a read-only role on live, and a live database left exactly as it was (also after a failing
revision and after Ctrl-C).

One live database (the shipped migrations, a few thousand alarm-log rows) serves the module:
a rehearsal must never change it, and every test checks that it did not.
"""

from __future__ import annotations

import json
import signal
import time
import uuid

import flask_migrate
import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from bench.load import seed_alarm_log
from safe_migrations.rehearse.forecast import strongest
from safe_migrations.rehearse.scratch import scratch_databases
from tests.conftest import PG_SERVER_URL, make_app
from tests.helpers import (
    add_revision,
    app_on,
    copy_repository,
    create_database,
    drop_database,
    execute,
    migrations_with,
    query,
    scalar,
    start_flask,
)

# Each statement takes (on the named table) the mode PostgreSQL's documentation gives for its class
# (https://www.postgresql.org/docs/current/explicit-locking.html and the ALTER TABLE page).
# Statements of one revision share its transaction, so each touches a table no earlier one touched.
DOCUMENTED_MODES = [
    ("UPDATE device SET platform", "device", "ROW EXCLUSIVE"),
    ("CREATE INDEX ix_rh_temperature ON forecast", "forecast", "SHARE"),
    ("ADD CONSTRAINT fk_rh_market FOREIGN KEY", "subscription", "SHARE ROW EXCLUSIVE"),
    ("ADD CONSTRAINT fk_rh_market FOREIGN KEY", "market", "SHARE ROW EXCLUSIVE"),
    ("ALTER TABLE market_alarm_log ADD COLUMN note", "market_alarm_log", "ACCESS EXCLUSIVE"),
    ("LOCK TABLE push_delivery IN EXCLUSIVE MODE", "push_delivery", "EXCLUSIVE"),
    ("CREATE INDEX CONCURRENTLY", "market_alarm_log", "SHARE UPDATE EXCLUSIVE"),
    ("ADD CONSTRAINT ck_rh_temperature CHECK", "forecast", "ACCESS EXCLUSIVE"),
    ("VALIDATE CONSTRAINT ck_rh_temperature", "forecast", "SHARE UPDATE EXCLUSIVE"),
]
LOCK_CLASSES = """
op.execute("UPDATE device SET platform = platform")
op.execute("CREATE INDEX ix_rh_temperature ON forecast (temperature)")
op.execute("ALTER TABLE subscription ADD CONSTRAINT fk_rh_market FOREIGN KEY (market_id) REFERENCES market (id)")
op.execute("ALTER TABLE market_alarm_log ADD COLUMN note text")
op.execute("LOCK TABLE push_delivery IN EXCLUSIVE MODE")
"""
OUTSIDE_A_TRANSACTION = """
create_index_concurrently("ix_rh_title", "market_alarm_log", ["title"])
op.execute("ALTER TABLE forecast ADD CONSTRAINT ck_rh_temperature CHECK (temperature > -100) NOT VALID")
"""
REWRITES = """
op.execute("ALTER TABLE forecast VALIDATE CONSTRAINT ck_rh_temperature")
op.execute("ALTER TABLE market_alarm_log ADD COLUMN shuffled integer DEFAULT (random() * 10)::int")
op.execute("ALTER TABLE market ALTER COLUMN grid_nx TYPE bigint")
op.execute("ALTER TABLE device ADD COLUMN nickname text")
"""
CONCURRENTLY = "from safe_migrations.operations import create_index_concurrently"
# A validating foreign key and a type change would break the previous image: the gates ask for a reason.
CONTRACT_REVIEWED = 'reviewed_contract = "a rehearsal test: no previous image runs"'


@pytest.fixture(scope="module")
def live(pg_admin):
    """The live database: every shipped revision and 5,000 alarm-log rows (1,000 markets)."""
    url = create_database(PG_SERVER_URL, "wbtest_rehearse_")
    application = make_app(url)
    with application.app_context():
        flask_migrate.upgrade()
        from models import db

        db.engine.dispose()
    seed_alarm_log(url, 5_000)
    yield url
    drop_database(PG_SERVER_URL, url)


# The schema as the catalogs hold it: columns, constraints and indexes with their definitions.
SCHEMA = """
SELECT 'column', table_name || '.' || column_name, data_type || coalesce(' default ' || column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'constraint', conrelid::regclass || '.' || conname, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
ORDER BY 1, 2
"""


def state_of(url: str) -> dict:
    """What a rehearsal must leave as it was: schema, version rows, row counts; and no scratch copy."""
    tables = [row[0] for row in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return {
        "schema": query(url, SCHEMA),
        "versions": sorted(query(url, "SELECT version_num FROM alembic_version")),
        "rows": {table: scalar(url, f'SELECT count(*) FROM "{table}"') for table in sorted(tables)},
        "scratch": scratch_databases(PG_SERVER_URL, url),
    }


def app_with(live_url: str, folder, *revisions: tuple[str, str, str]) -> Flask:
    """The app on ``live_url`` with the shipped revisions plus ``revisions`` (id, upgrade body, header)."""
    return app_on(live_url, migrations_with(folder, revisions))


def rehearse(application: Flask, *args: str):
    return application.test_cli_runner().invoke(args=["db", "rehearse", *args])


@pytest.fixture(scope="module")
def rehearsed(live, tmp_path_factory):
    """One rehearsal of three revisions through `flask db rehearse --json` (the live state before and after)."""
    before = state_of(live)
    application = app_with(
        live,
        tmp_path_factory.mktemp("rehearsed"),
        ("aaaa00000001", LOCK_CLASSES, CONTRACT_REVIEWED),
        ("aaaa00000002", OUTSIDE_A_TRANSACTION, CONCURRENTLY),
        ("aaaa00000003", REWRITES, CONTRACT_REVIEWED + '\nreviewed_destructive = "int to bigint widens"'),
    )
    result = rehearse(application, "--json", "--sample", "0.5", "--max-stall", "3600000")
    return before, result, state_of(live)


def statements(result) -> list[dict]:
    report = json.loads(result.stdout)
    return [statement for revision in report["revisions"] for statement in revision["statements"]]


def find(result, text: str) -> dict:
    (found,) = [s for s in statements(result) if text in s["sql"]]
    return found


def test_lock_modes_match_the_documented_ones(rehearsed):
    _, result, _ = rehearsed
    assert result.exit_code == 0, result.output
    for text, table, mode in DOCUMENTED_MODES:
        locks = strongest((lock["relation"], lock["mode"]) for lock in find(result, text)["locks"])
        assert locks.get(table) == mode, f"{text}: {locks}"


def test_rewrites_are_detected_for_a_volatile_default_and_a_type_change_only(rehearsed):
    _, result, _ = rehearsed
    assert "market_alarm_log" in find(result, "ADD COLUMN shuffled")["rewrites"]
    assert "market" in find(result, "ALTER COLUMN grid_nx TYPE bigint")["rewrites"]
    assert find(result, "ADD COLUMN nickname")["rewrites"] == []
    assert find(result, "ADD COLUMN note")["rewrites"] == []


def test_forecast_scales_what_scans_and_keeps_what_does_not(rehearsed):
    _, result, _ = rehearsed
    # Half the rows on the scratch copy: a scan of market_alarm_log costs about twice as much on live.
    rewrite = find(result, "ADD COLUMN shuffled")
    assert rewrite["rows"] > 0 and rewrite["forecast_ms"] > rewrite["ms"]
    assert rewrite["stall_ms"] >= rewrite["forecast_ms"]
    catalog_only = find(result, "ADD COLUMN nickname")
    assert catalog_only["forecast_ms"] == catalog_only["ms"]
    assert find(result, "CREATE INDEX CONCURRENTLY")["stall_ms"] == 0  # writers never wait for it


def test_live_is_unchanged_and_no_scratch_database_is_left(rehearsed):
    before, result, after = rehearsed
    assert result.exit_code == 0, result.output
    assert after == before
    assert before["scratch"] == []


def test_max_stall_gates(live, tmp_path):
    application = app_with(live, tmp_path, ("bbbb00000001", LOCK_CLASSES, CONTRACT_REVIEWED))
    result = rehearse(application, "--max-stall", "0")
    assert result.exit_code == 1
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("rehearse: FAIL") and "exceeds --max-stall 0 ms" in verdict, verdict
    assert "ACCESS EXCLUSIVE" in result.stdout and "market_alarm_log: reads" in result.stdout


def test_a_read_only_role_on_live_is_enough(live, tmp_path, monkeypatch):
    role = f"wbtest_reader_{uuid.uuid4().hex[:8]}"
    execute(PG_SERVER_URL, f"CREATE ROLE {role} LOGIN", f"GRANT pg_read_all_data TO {role}")
    try:
        monkeypatch.setenv("REHEARSE_DATABASE_URL", PG_SERVER_URL)  # the scratch copy: a role that may CREATEDB
        reader = make_url(live).set(username=role).render_as_string(hide_password=False)
        result = rehearse(app_with(reader, tmp_path, ("eeee00000001", LOCK_CLASSES, CONTRACT_REVIEWED)))
        assert result.exit_code == 0, result.output
        assert "rehearse: OK" in result.stdout.strip().splitlines()[-1]
    finally:
        execute(PG_SERVER_URL, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_a_failing_revision_is_reported_and_leaves_nothing_behind(live, tmp_path):
    before = state_of(live)
    failing = 'op.execute("ALTER TABLE market ADD COLUMN doomed integer")\nop.execute("SELECT 1 / 0")'
    application = app_with(live, tmp_path, ("cccc00000001", failing, ""))
    result = rehearse(application)
    assert result.exit_code == 1
    verdict = result.stdout.strip().splitlines()[-1]
    assert "revision cccc00000001 failed" in verdict and "division by zero" in verdict, verdict
    assert state_of(live) == before


def test_ctrl_c_drops_the_scratch_database(live, tmp_path):
    before = state_of(live)
    repo = copy_repository(tmp_path / "repo")
    add_revision(repo, "dddd00000001", 'op.execute("SELECT pg_sleep(59.25)")')
    process = start_flask(live, "db", "rehearse", cwd=repo)
    try:
        deadline = time.monotonic() + 60
        sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(59.25)'"
        while not scalar(live, sleeping):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        "flask db rehearse: interrupted; the scratch database was dropped, live untouched"
    )
    assert state_of(live) == before


def test_sqlite_is_refused_in_one_line(sqlite_url):
    result = make_app(sqlite_url).test_cli_runner().invoke(args=["db", "rehearse"])
    assert result.exit_code == 2
    assert result.output.strip() == "flask db rehearse: PostgreSQL only"
